// Replayctl inspects and manages a replay server (replayd).
//
// Usage:
//
//	replayctl [global flags] COMMAND [ARGS] [flags]
//
// # Commands
//
//	info [--json]                 the server's tables: an aligned table with NAME SIZE MAX_SIZE SAMPLER
//	                              REMOVER RATE_LIMITER INSERTS SAMPLES, then, for each table where a
//	                              sample (or insert) of one item would wait, a line saying why, e.g.
//	                              "replay: sampling blocked: table size 3 is below min_size_to_sample 1000".
//	                              --json prints everything ServerInfo has (all counters, the limiter's
//	                              parameters, signatures) as one JSON object with a "tables" array.
//	sample TABLE [-n N] [--json]  sample N items (default 1) and print one line per item: key, priority,
//	                              probability, times_sampled, table_size, inserted_at, rate_limited and
//	                              the columns' dtypes and shapes; --json prints JSON lines. Sampling
//	                              changes the table like any sample (times sampled, limiter counters,
//	                              max_times_sampled deletions). --timeout bounds the wait for the rate
//	                              limiter for each item; when it runs out, the error says why the limiter
//	                              blocks.
//	reset TABLE                   delete every item of TABLE and zero its counters.
//	checkpoint                    ask the server to write a checkpoint and print its path; a server
//	                              started without --checkpoint-dir is reported as such (exit status 1).
//	checkpoint ls DIR             list the checkpoints in DIR, newest first, with their status
//	                              (complete, corrupt), creation time, tables, items and bytes; no
//	                              server needed.
//	checkpoint inspect PATH       what one checkpoint holds: tables and their options, item counts,
//	                              chunks and bytes, limiter counters and why sampling would block
//	                              after a restore; --items N lists items, --json, --quick skips the
//	                              checksum pass. No server needed.
//	bench [flags]                 a load benchmark (replayctl bench -h).
//	help [COMMAND]                the usage, or a command's flags.
//
// # Global flags
//
// They may come before or after the command name:
//
//	--addr HOST:PORT   the server (default 127.0.0.1:9090)
//	--auth-token T     bearer token sent with every call (default $REPLAY_AUTH_TOKEN)
//	--tls-ca FILE      connect with TLS, trusting the CA certificates in FILE (PEM)
//	--tls              connect with TLS, trusting the system's CA certificates
//	--timeout D        how long to wait to connect and for each call; for sample, how long the
//	                   rate limiter may block one item (default 10s; 0: no limit)
//
// # Exit status
//
// 0 on success, 1 when the command fails (server unreachable, unknown
// table, rate-limiter timeout, checkpoints unsupported, ...), 2 for a bad
// command line (unknown command or flag, missing arguments).
package main
