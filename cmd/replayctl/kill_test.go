package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/recall-rl/recall/internal/testutil"
	"github.com/recall-rl/recall/replay"
)

// TestKilledWriterLeavesNothingBehind runs the real load generator as a
// client process, SIGKILLs it in the middle of its insert streams, and
// checks that the server kept only whole items: every chunk it still holds
// belongs to an item (no chunk of a half-sent request lingers) and the
// table's counters agree with its contents.
func TestKilledWriterLeavesNothingBehind(t *testing.T) {
	_, ctlPath := binaries(t)
	addr, srv := startServer(t, replay.ServerOptions{})
	for round := 0; round < 3; round++ {
		bench := testutil.StartProcess(t, ctlPath, nil, "--addr", addr, "bench", "--mode", "insert", "--table", "replay",
			"--item-size", "4096", "--items-per-message", "32", "--clients", "3", "--duration", "30s")
		// Wait until inserts are flowing, then kill the client mid-stream.
		before := srv.Table("replay").Info().Limiter.Inserts
		deadline := time.Now().Add(20 * time.Second)
		for srv.Table("replay").Info().Limiter.Inserts < before+200 {
			if time.Now().After(deadline) {
				t.Fatalf("the load generator inserted nothing; its output:\n%s", bench.Output.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		bench.Signal(t, syscall.SIGKILL)
		bench.Wait(t, 10*time.Second) // -1: killed

		// Once the server notices the dead streams, the only chunks left
		// are those of stored items (each bench item has its own chunk).
		deadline = time.Now().Add(10 * time.Second)
		for {
			in := srv.Table("replay").Info()
			chunks := srv.Chunks().Len()
			if chunks == in.Size && in.Size == in.Limiter.Inserts-in.Limiter.Deletes {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d chunks held for %d items (limiter %+v)", round, chunks, in.Size, in.Limiter)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
