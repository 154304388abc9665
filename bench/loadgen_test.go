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
	info, err := replay.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer info.Close()
	// counters returns the inserts and samples the server's table has seen.
	counters := func(t *testing.T) (inserts, samples int64) {
		t.Helper()
		si, err := info.ServerInfo(context.Background())
		if err != nil || len(si.Tables) != 1 {
			t.Fatalf("server info: %+v, %v", si, err)
		}
		return si.Tables[0].Limiter.Inserts, si.Tables[0].Limiter.Samples
	}
	const prefilled = 1000 // what prefill inserts for 2 clients
	for _, mode := range []string{ModeInsert, ModeSample, ModeMixed, ModeRaw} {
		t.Run(mode, func(t *testing.T) {
			ins0, smp0 := counters(t)
			res, err := RunLoad(context.Background(), LoadConfig{Mode: mode, Table: "t", ItemSize: 256,
				ItemsPerMessage: 8, Clients: 2, Duration: 200 * time.Millisecond, Dial: dialer(addr)})
			if err != nil {
				t.Fatal(err)
			}
			// The counts reported must be what the server saw: every item
			// counted by a writer was acknowledged, and a sampler can only
			// have received what the table served.
			ins1, smp1 := counters(t)
			ins, smp := ins1-ins0, smp1-smp0
			switch mode {
			case ModeInsert:
				if ins != res.Items || smp != 0 {
					t.Fatalf("reported %d items; server saw %d inserts, %d samples", res.Items, ins, smp)
				}
			case ModeSample:
				if ins != prefilled || smp < res.Items {
					t.Fatalf("reported %d items; server saw %d inserts (want %d), %d samples", res.Items, ins, prefilled, smp)
				}
			case ModeMixed:
				if ins-prefilled+smp < res.Items {
					t.Fatalf("reported %d items; server saw %d inserts after the prefill and %d samples", res.Items, ins-prefilled, smp)
				}
			case ModeRaw:
				if ins != 0 || smp != 0 {
					t.Fatalf("raw streams touched the table: %d inserts, %d samples", ins, smp)
				}
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
