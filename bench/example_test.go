package bench_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/recall-rl/recall/bench"
	"github.com/recall-rl/recall/replay"
)

// Drive a local server with two writers for a moment and read the result.
func ExampleRunLoad() {
	srv, err := replay.NewServer(replay.ServerOptions{Tables: replay.DefaultConfig()})
	if err != nil {
		panic(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	res, err := bench.RunLoad(context.Background(), bench.LoadConfig{
		Mode: bench.ModeInsert, Table: "default", ItemSize: 1024, ItemsPerMessage: 16,
		Clients: 2, Duration: 100 * time.Millisecond,
		Dial: func(ctx context.Context) (*replay.Client, error) { return replay.Dial(ctx, lis.Addr().String()) },
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Mode, res.Items > 0, res.BytesPerSec == res.ItemsPerSec*1024)
	// Output: insert true true
}
