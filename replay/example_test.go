package replay_test

import (
	"context"
	"fmt"
	"net"

	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// A server with a FIFO table on a free loopback port, an actor writing
// three steps, and a learner sampling them back in order.
func Example() {
	ctx := context.Background()
	srv, err := replay.NewServer(replay.ServerOptions{Tables: []table.Options{
		{Name: "fifo", Sampler: sampler.FIFOSpec(), MaxTimesSampled: 1},
	}})
	if err != nil {
		panic(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	c, err := replay.Dial(ctx, lis.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()

	w, err := c.NewWriter(replay.WriterOptions{})
	if err != nil {
		panic(err)
	}
	for step := 0; step < 3; step++ {
		obs, _ := replay.FromSlice([]float32{float32(step), float32(step) / 2})
		if err := w.Append(map[string]replay.Tensor{"obs": obs}); err != nil {
			panic(err)
		}
		if err := w.CreateItem(ctx, "fifo", 1, w.History("obs").Last(1)); err != nil {
			panic(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		panic(err)
	}
	w.Close()

	s, err := c.NewSampler("fifo", replay.WithMaxSamples(3))
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for i := 0; i < 3; i++ {
		smp, err := s.Next(ctx)
		if err != nil {
			panic(err)
		}
		obs, _ := smp.Column("obs")
		v, _ := replay.ToSlice[float32](obs)
		fmt.Println(obs.Shape, v, "times sampled:", smp.Info.TimesSampled)
	}
	// Output:
	// [1 2] [0 0] times sampled: 1
	// [1 2] [1 0.5] times sampled: 1
	// [1 2] [2 1] times sampled: 1
}
