// Package replay is the replay service: a gRPC server that holds tables of
// prioritised trajectories (package table) and the Go client that actors and
// learners use to fill and sample them.
//
// # Server
//
// NewServer builds the tables of ServerOptions and Serve serves them:
//
//	srv, err := replay.NewServer(replay.ServerOptions{Tables: replay.DefaultConfig()})
//	lis, err := net.Listen("tcp", "127.0.0.1:9090")
//	go srv.Serve(lis)
//	defer srv.Shutdown(ctx)
//
// The wire format is FlatBuffers over gRPC (schema replay.fbs, generated
// code in internal/wire). Insert is a bidirectional stream of chunks and
// items acknowledged by key; Sample is a stream the client paces by granting
// credit, so prefetching is bounded; MutatePriorities, Reset, Checkpoint and
// ServerInfo are unary, and the standard gRPC health service is served too.
// The server never decompresses chunk data: clients encode chunks (zstd,
// optional delta encoding, a checksum) and the server stores and forwards
// the bytes. Insert requests and sample responses carry chunk payloads of
// 4 KiB or more after the FlatBuffer rather than inside it, so the sender
// hands them to gRPC without copying them into the message (see
// InsertRequest and SampleResponse in replay.fbs).
//
// # Client
//
// Dial connects; a Writer (Reverb's TrajectoryWriter) appends steps of named
// columns, creates items from slices of the recent history of each column
// and flushes them, reconnecting and resending on its own when the server
// restarts; a Sampler streams samples with their decoded columns:
//
//	c, err := replay.Dial(ctx, "127.0.0.1:9090")
//	w, err := c.NewWriter(replay.WriterOptions{})
//	w.Append(map[string]replay.Tensor{"obs": obs})
//	w.CreateItem(ctx, "default", 1, w.History("obs").Last(1))
//	w.Flush(ctx)
//	s, err := c.NewSampler("default")
//	sample, err := s.Next(ctx)
//
// # Checkpoints and durability
//
// With ServerOptions.Checkpoint the server writes consistent, atomic
// checkpoints to a directory (on request, periodically) and restores the
// newest at start; in durable mode every acknowledged change is logged
// before its ack. docs/checkpoints.md describes the format and guarantees.
//
// # Errors
//
// This package is the only place where errors become gRPC status codes:
// unknown table NotFound, bad priority or malformed request
// InvalidArgument, rate-limiter wait past its deadline DeadlineExceeded,
// server shutting down Unavailable. The client maps the codes back to
// ErrTableNotFound, ErrInvalidArgument, ErrRateLimiterTimeout (which also
// matches context.DeadlineExceeded), ErrUnavailable and so on; test with
// errors.Is.
//
// # Concurrency
//
// Server, Client, Writer and Sampler are safe for concurrent use, except
// that one Sampler's Next should be called from one goroutine at a time.
package replay
