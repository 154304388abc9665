package table

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
)

var benchSizes = []int{1_000, 100_000, 1_000_000}

var benchSelectors = []sampler.Spec{
	sampler.UniformSpec(), sampler.PrioritizedSpec(0.6), sampler.FIFOSpec(),
	sampler.LIFOSpec(), sampler.MinHeapSpec(), sampler.MaxHeapSpec(),
}

// benchTable returns a table of size items (all over one shared chunk, so
// the table, not the chunk store, is measured) that evicts FIFO at size.
func benchTable(b *testing.B, spec sampler.Spec, size int) (*Table, Item) {
	b.Helper()
	store := NewChunkStore()
	tb, err := New(Options{Name: "bench", Sampler: spec, Remover: sampler.FIFOSpec(), MaxSize: int64(size),
		RateLimiter: ratelimit.Must(ratelimit.MinSize(1)), Chunks: store, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ref := store.Add(&Chunk{Key: 1, Length: 1, Data: make([]byte, 64)})
	it := Item{Priority: 1, Chunks: []*ChunkRef{ref}, Trajectory: []TrajectoryColumn{{Slices: []ChunkSlice{{ChunkKey: 1, Length: 1}}}}}
	ctx := context.Background()
	for k := 0; k < size; k++ {
		it.Key = uint64(k) + 1
		it.Priority = float64(k%97) + 1
		if err := tb.Insert(ctx, it); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { tb.Close() })
	return tb, it
}

// BenchmarkTableInsertSample measures one insert (which evicts one item)
// plus one sample: the steady state of a full replay table.
func BenchmarkTableInsertSample(b *testing.B) {
	for _, spec := range benchSelectors {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("sampler=%s/size=%d", spec.Kind, size), func(b *testing.B) {
				tb, it := benchTable(b, spec, size)
				ctx := context.Background()
				next := uint64(size) + 1
				var buf []Sampled
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					it.Key = next
					it.Priority = float64(next%97) + 1
					next++
					if err := tb.Insert(ctx, it); err != nil {
						b.Fatal(err)
					}
					var err error
					if buf, err = tb.SampleInto(ctx, buf[:0], 1, false); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			})
		}
	}
}

// BenchmarkTableInsertSampleParallel runs insert+sample pairs from
// GOMAXPROCS goroutines on one table (one lock).
func BenchmarkTableInsertSampleParallel(b *testing.B) {
	for _, spec := range []sampler.Spec{sampler.UniformSpec(), sampler.PrioritizedSpec(0.6), sampler.FIFOSpec()} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("sampler=%s/size=%d", spec.Kind, size), func(b *testing.B) {
				tb, proto := benchTable(b, spec, size)
				var next atomic.Uint64
				next.Store(uint64(size) + 1)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					it := proto
					var buf []Sampled
					for pb.Next() {
						it.Key = next.Add(1)
						if err := tb.Insert(ctx, it); err != nil {
							b.Error(err)
							return
						}
						var err error
						if buf, err = tb.SampleInto(ctx, buf[:0], 1, false); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			})
		}
	}
}
