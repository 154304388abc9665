package table_test

import (
	"context"
	"fmt"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// Fill a queue-shaped table and drain it: each item is sampled once, in
// insertion order, and the chunk store empties as items go.
func Example() {
	ctx := context.Background()
	store := table.NewChunkStore()
	tb, err := table.New(table.Options{
		Name:            "queue",
		Chunks:          store,
		Sampler:         sampler.FIFOSpec(),
		Remover:         sampler.FIFOSpec(),
		MaxSize:         10,
		MaxTimesSampled: 1,
		RateLimiter:     ratelimit.Must(ratelimit.Queue(10)),
	})
	if err != nil {
		panic(err)
	}
	defer tb.Close()

	for key := uint64(1); key <= 3; key++ {
		ref := store.Add(&table.Chunk{Key: key, Length: 1, Data: []byte{byte(key)}})
		err := tb.Insert(ctx, table.Item{
			Key:        key,
			Priority:   1,
			Chunks:     []*table.ChunkRef{ref},
			Trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: key, Length: 1}}}},
		})
		ref.Release()
		if err != nil {
			panic(err)
		}
	}
	fmt.Println("size:", tb.Size(), "chunks:", store.Len())

	samples, err := tb.Sample(ctx, 3)
	if err != nil {
		panic(err)
	}
	for _, s := range samples {
		fmt.Printf("key %d data %v times sampled %d\n", s.Info.Key, s.Chunks[0].Data, s.Info.TimesSampled)
	}
	fmt.Println("size:", tb.Size(), "chunks:", store.Len())
	// Output:
	// size: 3 chunks: 3
	// key 1 data [1] times sampled 1
	// key 2 data [2] times sampled 1
	// key 3 data [3] times sampled 1
	// size: 0 chunks: 0
}
