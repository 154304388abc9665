package bench

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

// startServer runs a replay server with one table on loopback.
func startServer(tb testing.TB, to table.Options) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := replay.NewServer(replay.ServerOptions{Tables: []table.Options{to}, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(lis); close(done) }()
	tb.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

func dialer(addr string) func(ctx context.Context) (*replay.Client, error) {
	return func(ctx context.Context) (*replay.Client, error) { return replay.Dial(ctx, addr) }
}

func TestRunLoadModes(t *testing.T) {
	addr := startServer(t, table.Options{Name: "t", MaxSize: 10_000})
	for _, mode := range []string{ModeInsert, ModeSample, ModeMixed, ModeRaw} {
		t.Run(mode, func(t *testing.T) {
			res, err := RunLoad(context.Background(), LoadConfig{Mode: mode, Table: "t", ItemSize: 256,
				ItemsPerMessage: 8, Clients: 2, Duration: 200 * time.Millisecond, Dial: dialer(addr)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Items <= 0 || res.ItemsPerSec <= 0 || res.BytesPerSec != res.ItemsPerSec*256 && mode != ModeMixed {
				t.Fatalf("result %+v", res)
			}
			if mode == ModeMixed && (res.InsertItemsPerSec <= 0 || res.SampleItemsPerSec <= 0) {
				t.Fatalf("mixed result %+v", res)
			}
		})
	}
}

func TestRunLoadValidation(t *testing.T) {
	bad := []LoadConfig{
		{Mode: "nope"},
		{Mode: ModeInsert, ItemSize: 1},
		{Mode: ModeInsert, ItemSize: 8, ItemsPerMessage: 0},
		{Mode: ModeInsert, ItemSize: 8, ItemsPerMessage: 1, Clients: 0},
		{Mode: ModeInsert, ItemSize: 8, ItemsPerMessage: 1, Clients: 1, Duration: 0},
		{Mode: ModeInsert, ItemSize: 8, ItemsPerMessage: 1, Clients: 1, Duration: time.Second},
		{Mode: ModeMixed, Table: "t", ItemSize: 8, ItemsPerMessage: 1, Clients: 1, Duration: time.Second, Dial: dialer("x")},
	}
	for i, cfg := range bad {
		if _, err := RunLoad(context.Background(), cfg); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}
