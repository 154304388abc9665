package replay

import (
	"context"
	crand "crypto/rand"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// Checkpoint and durable-mode benchmarks. Results and the commands that
// produced them are in docs/checkpoints.md.
//
//	go test ./replay -run XXX -bench 'Checkpoint$' -benchtime 3x                     # 64 MiB
//	go test ./replay -run XXX -bench 'Checkpoint$' -benchtime 1x -checkpoint.bytes 1GiB
//	RECALL_CHECKPOINT_BENCH_BYTES=1GiB go test ./replay -run XXX -bench 'Checkpoint$' -benchtime 1x
//	go test ./replay -run XXX -bench DurableInsert -benchtime 20000x

var checkpointBenchBytes = flag.String("checkpoint.bytes", envOr("RECALL_CHECKPOINT_BENCH_BYTES", "64MiB"),
	"data held by the tables in BenchmarkCheckpoint (e.g. 64MiB, 1GiB; env RECALL_CHECKPOINT_BENCH_BYTES)")

var durableBenchModes = flag.String("durable.modes", "memory,durable,nofsync", "modes BenchmarkDurableInsert runs: memory, durable (fsync), nofsync")

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n * float64(mult)), nil
}

// fillTables inserts items of itemBytes random (incompressible) bytes into
// the server's tables directly, each item with a chunk of its own, until
// total bytes are held; every fourth item also goes into a second table
// (shared chunks, stored once in a checkpoint).
func fillTables(b *testing.B, s *Server, total int64, itemBytes int) {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	a, other := s.Table("a"), s.Table("b")
	buf := make([]byte, 1<<20)
	for i := int64(0); i*int64(itemBytes) < total; i++ {
		if i%int64(len(buf)/itemBytes) == 0 {
			_, _ = crand.Read(buf)
		}
		off := int(i%int64(len(buf)/itemBytes)) * itemBytes
		data := make([]byte, itemBytes)
		copy(data, buf[off:off+itemBytes])
		c := &table.Chunk{Key: uint64(i + 1), EpisodeID: uint64(i / 100), Start: i % 100, Length: 1, Data: data}
		ref := s.Chunks().Add(c)
		it := table.Item{Key: uint64(i + 1), Priority: rng.Float64(), Trajectory: whole(c), Chunks: []*table.ChunkRef{ref}}
		if err := a.Insert(ctx, it); err != nil {
			b.Fatal(err)
		}
		if i%4 == 0 {
			if err := other.Insert(ctx, it); err != nil {
				b.Fatal(err)
			}
		}
		ref.Release()
	}
}

func benchTables() []table.Options {
	return []table.Options{
		{Name: "a", Sampler: sampler.PrioritizedSpec(0.6), MaxSize: 100_000_000},
		{Name: "b", Sampler: sampler.UniformSpec(), MaxSize: 100_000_000},
	}
}

// BenchmarkCheckpoint writes checkpoints of -checkpoint.bytes of chunk data
// (16 KiB items) and restores the last one. It reports the write rate, the
// time the tables' locks are held (capture), the size on disk, and the
// restore (verify + load) time.
func BenchmarkCheckpoint(b *testing.B) {
	total, err := parseBytes(*checkpointBenchBytes)
	if err != nil {
		b.Fatal(err)
	}
	const itemBytes = 16 << 10
	dir := b.TempDir()
	opts := ServerOptions{Tables: benchTables(), Logger: discardLogger()}
	opts.Checkpoint = CheckpointOptions{Dir: dir, Keep: 1}
	s, err := NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	fillTables(b, s, total, itemBytes)
	b.SetBytes(s.Chunks().Bytes())
	ctx := context.Background()

	start := time.Now()
	if _, _, err := s.captureTables(); err != nil {
		b.Fatal(err)
	}
	capture := time.Since(start)

	b.ResetTimer()
	var path string
	for i := 0; i < b.N; i++ {
		if path, err = s.WriteCheckpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Stop()
	disk := diskBytes(path)

	start = time.Now()
	opts.Tables = benchTables()
	s2, err := NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	restore := time.Since(start)
	if got, want := s2.Table("a").Size(), total/itemBytes; got < want {
		b.Fatalf("restored %d items, want %d", got, want)
	}
	s2.Stop()
	b.ReportMetric(float64(capture.Microseconds())/1000, "capture-ms")
	b.ReportMetric(float64(disk)/(1<<20), "disk-MiB")
	b.ReportMetric(restore.Seconds(), "restore-s")
}

// BenchmarkDurableInsert measures insert throughput over gRPC on loopback
// with and without durable mode in the same run: b.N items of 16 KiB of
// random float32 (incompressible) from 4 writers into a table of at most
// 8192 items (so it evicts, and reconcile deletes), chunk length 1. It
// reports both rates and their ratio (the bar is durable/memory >= 0.5).
func BenchmarkDurableInsert(b *testing.B) {
	for _, size := range []int{16 << 10} {
		b.Run(fmt.Sprintf("item=%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			var mem, dur float64
			if strings.Contains(*durableBenchModes, "memory") {
				mem = insertRate(b, size, b.N, nil)
				b.ReportMetric(mem, "memory-items/s")
			}
			if strings.Contains(*durableBenchModes, "durable") {
				dur = insertRate(b, size, b.N, &CheckpointOptions{Dir: b.TempDir(), Durable: true})
				b.ReportMetric(dur, "durable-items/s")
			}
			if strings.Contains(*durableBenchModes, "nofsync") {
				nf := insertRate(b, size, b.N, &CheckpointOptions{Dir: b.TempDir(), Durable: true, NoFsync: true})
				b.ReportMetric(nf, "nofsync-items/s")
				if mem > 0 {
					b.ReportMetric(nf/mem, "nofsync/memory")
				}
			}
			if mem > 0 && dur > 0 {
				b.ReportMetric(dur/mem, "durable/memory")
			}
		})
	}
}

// insertRate runs a server (durable if ckpt is set) and returns the items
// per second n inserts took. The benchmark's timer runs only while items
// are inserted (not while servers and writers start and stop), so ns/op
// covers the inserts of every mode run.
func insertRate(b *testing.B, size, n int, ckpt *CheckpointOptions) float64 {
	b.Helper()
	b.StopTimer()
	opts := ServerOptions{Tables: []table.Options{{Name: "t", MaxSize: 8192}}, Logger: discardLogger()}
	if ckpt != nil {
		opts.Checkpoint = *ckpt
	}
	srv, err := NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(lis); close(done) }()
	defer func() { srv.Stop(); <-done }()

	const writers = 4
	payload := make([]float32, size/4)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range payload {
		payload[i] = rng.Float32()
	}
	data, err := FromSlice(payload)
	if err != nil {
		b.Fatal(err)
	}
	clients := make([]*Client, writers)
	ws := make([]*Writer, writers)
	for i := range ws {
		if clients[i], err = Dial(context.Background(), lis.Addr().String()); err != nil {
			b.Fatal(err)
		}
		defer clients[i].Close()
		if ws[i], err = clients[i].NewWriter(WriterOptions{ItemsPerMessage: max(1, min(64, (1<<20)/size)), MaxInFlightItems: 1024}); err != nil {
			b.Fatal(err)
		}
		defer ws[i].Close()
	}
	ctx := context.Background()
	b.StartTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hist := w.History("obs")
			for j := i; j < n; j += writers {
				if err := w.Append(map[string]Tensor{"obs": data}); err != nil {
					b.Error(err)
					return
				}
				if err := w.CreateItem(ctx, "t", 1, hist.Last(1)); err != nil {
					b.Error(err)
					return
				}
			}
			if err := w.Flush(ctx); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	return float64(n) / took.Seconds()
}
