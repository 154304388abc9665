// Package table is the in-process core of a replay server: a Table holds
// prioritised items that reference chunks of trajectories, samples and
// evicts them with selectors from package sampler, and paces inserts and
// samples with a rate limiter from package ratelimit.
//
// # Items and chunks
//
// A Chunk is a run of steps of one episode, encoded by the client; the table
// never looks inside Data. Chunks live in a ChunkStore shared by a server's
// tables and are reference-counted: each item holds one reference to every
// chunk its trajectory uses, and a chunk leaves the store when its last
// reference is released. An Item's trajectory is a list of columns, each a
// list of slices of chunk columns.
//
// # Semantics
//
// These follow Reverb:
//   - Inserting an existing key only updates its priority.
//   - When the table exceeds MaxSize, the new item is inserted first and then
//     the remover evicts one item (with a LIFO remover, the new one).
//   - A sampled item whose times-sampled count reaches MaxTimesSampled is
//     deleted after that sample is returned.
//   - MutatePriorities applies deletes first, then updates; unknown keys are
//     ignored. Unlike Reverb, an invalid priority rejects the whole call.
//   - Reset clears items, limiter counters and episode counters.
//
// # Blocking
//
// Insert and Sample wait while the rate limiter forbids them. Waiters sleep
// on a channel that is closed whenever the table changes and wake to
// re-check; there is no polling. A wait ends with an error matching
// ctx.Err() when the context ends and with ErrClosed when the table closes.
//
// # Concurrency
//
// A Table is safe for concurrent use; one mutex guards each table. Chunk
// references are released after the mutex is dropped.
//
// # Example
//
//	store := table.NewChunkStore()
//	tb, err := table.New(table.Options{Name: "replay", Chunks: store,
//		Sampler: sampler.PrioritizedSpec(0.6), MaxSize: 100_000})
//	ref := store.Add(&table.Chunk{Key: 1, Length: 1, Data: payload})
//	err = tb.Insert(ctx, table.Item{Key: 1, Priority: 1.5, Chunks: []*table.ChunkRef{ref},
//		Trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 1, Length: 1}}}}})
//	ref.Release() // the table holds its own reference now
//	samples, err := tb.Sample(ctx, 32)
package table
