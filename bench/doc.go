// Package bench holds the project's end-to-end benchmarks and the load
// generator behind `replayctl bench`.
//
// RunLoad drives a replay server with writers and samplers (or raw gRPC
// streams of the same message sizes, the ceiling the replay path is judged
// against) and reports items and bytes per second:
//
//	res, err := bench.RunLoad(ctx, bench.LoadConfig{
//		Mode: bench.ModeInsert, Table: "default", ItemSize: 1024,
//		ItemsPerMessage: 64, Clients: 2, Duration: 5 * time.Second,
//		Dial: func(ctx context.Context) (*replay.Client, error) { return replay.Dial(ctx, addr) },
//	})
//
// The go test benchmarks (bench_test.go) run a real server on loopback in
// the same process; docs/benchmarks.md records their results.
package bench
