// Replayd serves experience-replay tables over gRPC.
//
// Usage:
//
//	replayd [flags]
//
// It serves the tables of a config file (--config, YAML or JSON, described
// in docs/config.md) or, without one, a single table "default" (uniform
// sampler, FIFO remover, max size 1,000,000, MinSize(1) rate limiter; print
// it with --print-default-config). It runs until SIGINT or SIGTERM, then
// stops accepting RPCs, lets running ones finish for up to
// --shutdown-timeout, and exits 0. A second signal kills it at once.
//
// # Flags
//
//	--addr HOST:PORT            replay service address (default 127.0.0.1:9090; port 0 picks a free port)
//	--config FILE               table config (.yaml, .yml, .json)
//	--print-default-config      print the default config and exit
//	--metrics-addr HOST:PORT    serve Prometheus /metrics and /healthz over HTTP (default: off)
//	--tls-cert FILE --tls-key FILE
//	                            serve TLS with this PEM key pair
//	--auth-token TOKEN          require "authorization: Bearer TOKEN" on every RPC
//	                            (default $REPLAY_AUTH_TOKEN; health checks are exempt)
//	--max-message-bytes N       largest gRPC message (default 64 MiB)
//	--log-level LEVEL           debug, info (default), warn, error
//	--log-format FORMAT         text (default) or json
//	--shutdown-timeout D        grace period on SIGINT/SIGTERM (default 10s)
//	--gc-headroom MIB           heap growth allowed past the live data before a GC (default 128;
//	                            0 or $GOGC: Go's default), so RSS stays near the data held; up to
//	                            4x more while collecting takes over 15% of the CPU (small items)
//	--checkpoint-dir DIR        write checkpoints here and restore the newest state at start
//	--checkpoint-interval D     also checkpoint periodically (default: only on request)
//	--checkpoint-keep N         checkpoints kept (default 3)
//	--durable                   log every acknowledged insert, priority change and delete before
//	                            the ack, so a killed replayd loses nothing it acknowledged
//	--durable-sync-interval D, --durable-reconcile-interval D, --durable-fsync=false
//	                            durable-mode tuning (see docs/checkpoints.md)
//	--version                   print the version and exit
//
// # Output
//
// Logs go to stderr through log/slog. Once serving, replayd logs exactly
// one message "listening on HOST:PORT" with the bound address (the real
// port when --addr has port 0), followed, with --metrics-addr, by
// "metrics listening on HOST:PORT". Scripts and tests can wait for the
// first line that contains "listening on" to learn the address:
//
//	time=... level=INFO msg="listening on 127.0.0.1:41234" tables=default config=default tls=false auth=false version=0.1.0
//
// /healthz answers 200 "ok" while serving and 503 once shutting down.
//
// # Exit status
//
// 0 after a clean shutdown (also when the grace period ran out and
// connections were cut), 1 when the server cannot listen or fails while
// serving, 2 for a bad command line, config file or TLS files; the error
// names the file, the field and the reason, e.g.
//
//	replayd: invalid config: config.yaml: tables[1].sampler: unknown selector "prio" (want uniform, prioritized, fifo, lifo, min_heap or max_heap) (line 9)
package main
