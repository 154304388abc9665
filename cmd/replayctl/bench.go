package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/recall-rl/recall/bench"
	"github.com/recall-rl/recall/replay"
)

// runBench runs "replayctl bench": the load generator of package bench
// against the server at --addr. args are the arguments after "bench",
// preceded by the global flags given before the command.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := defaultGlobals()
	fs := flag.NewFlagSet("replayctl bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindGlobalFlags(fs, &g)
	mode := fs.String("mode", bench.ModeInsert, "load `mode`: insert, sample, mixed or raw")
	itemSize := fs.Int("item-size", 1024, "item payload in `bytes` (random float32 values)")
	perMsg := fs.Int("items-per-message", replay.DefaultItemsPerMessage, "items per insert message (and per raw message)")
	clients := fs.Int("clients", 1, "concurrent writers/samplers, each on its own connection")
	duration := fs.Duration("duration", 5*time.Second, "length of the measured phase")
	table := fs.String("table", "default", "table to insert into and sample from")
	prefetch := fs.Int("prefetch", 256, "credit of each sampler")
	compression := fs.String("compression", "none", "writer chunk compression: none, fastest, balanced, better, best")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the load generator to `file`")
	gcPercent := fs.Int("gogc", 400, "GC `percent` for the load generator while it runs (its heap is small, so Go's default collects it 100+ times a second at these rates and the tool, not the server, becomes the bottleneck); ignored when $GOGC is set")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: replayctl bench [--mode insert|sample|mixed|raw] [--item-size BYTES] [--items-per-message N] [--clients N] [--duration D] [--table T] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	comp, err := replay.ParseCompression(*compression)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	}
	cfg := bench.LoadConfig{
		Mode: *mode, Table: *table, ItemSize: *itemSize, ItemsPerMessage: *perMsg,
		Clients: *clients, Duration: *duration, Prefetch: *prefetch, Compression: comp,
		Dial: func(ctx context.Context) (*replay.Client, error) {
			c := g
			c.timeout = 0 // no call timeout during the run
			if g.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, g.timeout)
				defer cancel()
			}
			return c.dial(ctx)
		},
	}
	if os.Getenv("GOGC") == "" && *gcPercent > 0 {
		defer debug.SetGCPercent(debug.SetGCPercent(*gcPercent))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.RunLoad(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "mode=%s item_size=%d clients=%d seconds=%.2f items=%d\n", res.Mode, res.ItemSize, res.Clients, res.Seconds, res.Items)
	if res.InsertItemsPerSec > 0 {
		fmt.Fprintf(stdout, "insert: %.0f items/s %.1f MB/s\n", res.InsertItemsPerSec, res.InsertBytesPerSec/1e6)
	}
	if res.SampleItemsPerSec > 0 {
		fmt.Fprintf(stdout, "sample: %.0f items/s %.1f MB/s\n", res.SampleItemsPerSec, res.SampleBytesPerSec/1e6)
	}
	return exitOK
}
