package bench

import (
	"context"
	"fmt"
	"testing"

	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

// The end-to-end benchmarks run a real server on loopback in this process
// and a client over gRPC: random float32 items (compression cannot help),
// chunk length 1, as in the Reverb paper's setup. b.N counts items.

var e2eSizes = []int{1 << 10, 16 << 10, 256 << 10}

// itemsPerMessage is how many items of size bytes a writer with default
// options puts in one insert request.
func itemsPerMessage(size int) int {
	return max(1, min(replay.DefaultItemsPerMessage, rawBatchBytes/size))
}

func BenchmarkInsert(b *testing.B) {
	for _, size := range e2eSizes {
		b.Run(fmt.Sprintf("item=%dKiB", size>>10), func(b *testing.B) {
			addr := startServer(b, table.Options{Name: "t", MaxSize: int64(max(1000, (256<<20)/size))})
			c, err := replay.Dial(context.Background(), addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cfg := LoadConfig{ItemSize: size, ItemsPerMessage: itemsPerMessage(size)}
			w, err := c.NewWriter(writerOptions(cfg))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			data := payloads(size, 1)
			hist := w.History("obs")
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := w.Append(map[string]replay.Tensor{"obs": data[i%len(data)]}); err != nil {
					b.Fatal(err)
				}
				if err := w.CreateItem(ctx, "t", 1, hist.Last(1)); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

func BenchmarkSample(b *testing.B) {
	for _, size := range e2eSizes {
		b.Run(fmt.Sprintf("item=%dKiB", size>>10), func(b *testing.B) {
			addr := startServer(b, table.Options{Name: "t", MaxSize: 100_000})
			cfg := LoadConfig{Table: "t", ItemSize: size, ItemsPerMessage: itemsPerMessage(size), Clients: 1, Dial: dialer(addr)}
			ctx := context.Background()
			if err := prefill(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			c, err := replay.Dial(ctx, addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s, err := c.NewSampler("t", replay.WithPrefetch(256))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Next(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkRaw moves the same bytes over plain gRPC streams: the ceiling.
func BenchmarkRaw(b *testing.B) {
	for _, dir := range []string{"up", "down"} {
		for _, size := range e2eSizes {
			b.Run(fmt.Sprintf("dir=%s/item=%dKiB", dir, size>>10), func(b *testing.B) {
				addr := startServer(b, table.Options{Name: "t"})
				c, err := replay.Dial(context.Background(), addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				per := itemsPerMessage(size)
				msgs := (b.N + per - 1) / per
				b.SetBytes(int64(size))
				b.ResetTimer()
				if dir == "up" {
					err = c.BenchRawInsert(context.Background(), size*per, msgs, 8)
				} else {
					err = c.BenchRawSample(context.Background(), size*per, msgs, 8)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(msgs*per)/b.Elapsed().Seconds(), "items/s")
			})
		}
	}
}
