package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/recall-rl/recall/internal/testutil"
	"github.com/recall-rl/recall/replay"
)

func TestReplaydCheckpointFlagErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"durable without dir", []string{"--durable"}, "--durable needs --checkpoint-dir"},
		{"interval without dir", []string{"--checkpoint-interval", "1m"}, "--checkpoint-interval needs --checkpoint-dir"},
		{"keep zero", []string{"--checkpoint-dir", dir, "--checkpoint-keep", "0"}, "--checkpoint-keep 0: must be >= 1"},
		{"negative interval", []string{"--checkpoint-dir", dir, "--checkpoint-interval", "-1s"}, "--checkpoint-interval -1s: must be >= 0"},
		{"negative sync interval", []string{"--checkpoint-dir", dir, "--durable", "--durable-sync-interval", "-1ms"}, "--durable-sync-interval -1ms: must be >= 0"},
		{"zero reconcile interval", []string{"--checkpoint-dir", dir, "--durable", "--durable-reconcile-interval", "0s"}, "--durable-reconcile-interval 0s: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr.String(), tt.stderr)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"-h"}, &stdout, &stderr)
	for _, f := range []string{"-checkpoint-dir", "-checkpoint-interval", "-checkpoint-keep", "-durable", "-durable-sync-interval", "-durable-reconcile-interval"} {
		if !strings.Contains(stderr.String()+stdout.String(), f) {
			t.Errorf("usage lacks %s", f)
		}
	}
}

const checkpointTables = `
tables:
  - name: replay
    sampler: uniform
    max_size: 1000000
  - name: queue
    sampler: fifo
    max_size: 100
    max_times_sampled: 1
    rate_limiter: {queue: 100}
`

// The Checkpoint RPC writes into --checkpoint-dir, and a restart restores
// it; a table missing from the config stops the start with a clear error.
func TestReplaydCheckpointRestore(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, "tables.yaml", checkpointTables)
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--config", cfg, "--checkpoint-dir", dir)
	addr := testutil.WaitFor(t, p.stderr, listenRE)
	c := dial(t, addr)
	ids := writeItems(t, c, "queue", 0, 5)
	ctx := context.Background()
	path, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir {
		t.Fatalf("checkpoint %s is not in %s", path, dir)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	p = startInProcess(t, "--addr", "127.0.0.1:0", "--config", cfg, "--checkpoint-dir", dir)
	addr = testutil.WaitFor(t, p.stderr, listenRE)
	if got := sampleIDs(t, dial(t, addr), "queue", len(ids)); !sameIDs(got, ids) {
		t.Errorf("restored queue holds %v, want %v", got, ids)
	}
	if !strings.Contains(p.stderr.String(), "from="+path) {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
	p.stop(t)

	renamed := testutil.WriteFile(t, "renamed.yaml", strings.Replace(checkpointTables, "name: queue", "name: fifo", 1))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--config", renamed, "--checkpoint-dir", dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `holds table \"queue\", which the config does not define`) {
		t.Errorf("renamed table: exit %d, stderr:\n%s", code, stderr.String())
	}
}

// writeItems appends n steps with ids first..first+n-1 and makes an item of
// each in table, flushing at the end.
func writeItems(t *testing.T, c *replay.Client, table string, first, n int) []int64 {
	t.Helper()
	w, err := c.NewWriter(replay.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []int64
	for i := first; i < first+n; i++ {
		if err := w.Append(map[string]replay.Tensor{"id": replay.Scalar(int64(i))}); err != nil {
			t.Fatal(err)
		}
		if err := w.CreateItem(ctx, table, 1, w.History("id").Last(1)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, int64(i))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func sampleID(t testing.TB, s replay.Sample) int64 {
	t.Helper()
	v, err := replay.ToSlice[int64](s.Columns[0])
	if err != nil || len(v) != 1 {
		t.Fatalf("sample column: %v, %v", v, err)
	}
	return v[0]
}

// sampleIDs samples n items of a queue-like table (each item once).
func sampleIDs(t *testing.T, c *replay.Client, table string, n int) []int64 {
	t.Helper()
	s, err := c.NewSampler(table, replay.WithMaxSamples(int64(n)), replay.WithRateLimiterTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []int64
	for range n {
		smp, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("sample %d: %v", len(ids), err)
		}
		ids = append(ids, sampleID(t, smp))
	}
	return ids
}

func sameIDs(a, b []int64) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

const durableTables = `
tables:
  - name: replay
    sampler: uniform
    max_size: 1000000
`

// enumerateTables is durableTables with a queue's sampler: restored with it
// (the config's options win), every item is sampled exactly once.
const enumerateTables = `
tables:
  - name: replay
    sampler: fifo
    max_size: 1000000
    max_times_sampled: 1
`

func priorityOf(id int64) float64 { return float64(id%1000) + 0.25 }

// SIGKILL replayd --durable while writers insert and a learner updates and
// deletes priorities; after a restart every acknowledged item is back with
// its acknowledged priority, and no acknowledged delete is undone. With
// --durable-fsync=false too: killing the process loses nothing either.
func TestReplaydDurableSIGKILL(t *testing.T) {
	for _, fsync := range []bool{true, false} {
		t.Run(fmt.Sprintf("fsync=%v", fsync), func(t *testing.T) { testDurableSIGKILL(t, fsync) })
	}
}

func testDurableSIGKILL(t *testing.T, fsync bool) {
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, "tables.yaml", durableTables)
	args := []string{"--addr", "127.0.0.1:0", "--config", cfg, "--checkpoint-dir", dir, "--durable", fmt.Sprintf("--durable-fsync=%v", fsync)}
	p := startProcess(t, nil, args...)
	addr := testutil.WaitFor(t, p.Output, listenRE)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	acked := map[int64]bool{}      // inserts acknowledged
	created := map[int64]bool{}    // inserts attempted
	prio := map[int64]float64{}    // acknowledged priority updates
	pending := map[int64]float64{} // updates in flight at the kill: either value may survive
	deleted := map[int64]bool{}    // acknowledged deletes
	maybeDeleted := map[int64]bool{}

	const writers = 3
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := dial(t, addr)
			wr, err := c.NewWriter(replay.WriterOptions{MaxInFlightItems: 64})
			if err != nil {
				t.Error(err)
				return
			}
			defer wr.Close()
			for i := 0; ; i++ {
				var batch []int64
				for j := 0; j < 8; j++ {
					id := int64(w)<<32 | int64(i*8+j)
					mu.Lock()
					created[id] = true
					mu.Unlock()
					if err := wr.Append(map[string]replay.Tensor{"id": replay.Scalar(id)}); err != nil {
						return
					}
					if err := wr.CreateItem(ctx, "replay", priorityOf(id), wr.History("id").Last(1)); err != nil {
						return
					}
					batch = append(batch, id)
				}
				if err := wr.Flush(ctx); err != nil {
					return
				}
				mu.Lock()
				for _, id := range batch {
					acked[id] = true
				}
				mu.Unlock()
			}
		}(w)
	}
	// The learner samples, then re-prioritises or deletes what it sampled.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := dial(t, addr)
		s, err := c.NewSampler("replay", replay.WithRateLimiterTimeout(time.Second))
		if err != nil {
			t.Error(err)
			return
		}
		defer s.Close()
		rng := rand.New(rand.NewPCG(7, 8))
		for {
			smp, err := s.Next(ctx)
			if err != nil {
				return
			}
			id := sampleID(t, smp)
			key := smp.Info.Key
			if rng.IntN(4) == 0 {
				mu.Lock()
				maybeDeleted[id] = true
				mu.Unlock()
				if err := c.MutatePriorities(ctx, "replay", nil, []uint64{key}); err != nil {
					return
				}
				mu.Lock()
				deleted[id] = true
				mu.Unlock()
				continue
			}
			p := float64(rng.IntN(1000)) + 0.5
			mu.Lock()
			pending[id] = p
			mu.Unlock()
			if err := c.MutatePriorities(ctx, "replay", map[uint64]float64{key: p}, nil); err != nil {
				return
			}
			mu.Lock()
			prio[id] = p
			delete(pending, id)
			mu.Unlock()
		}
	}()

	// Kill mid-stream once enough is acknowledged.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n, m := len(acked), len(prio)+len(deleted)
		mu.Unlock()
		if (n >= 1500 && m >= 50) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Signal(t, syscall.SIGKILL)
	p.Wait(t, 10*time.Second)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("killed after %d acknowledged inserts (%d attempted), %d updates, %d deletes", len(acked), len(created), len(prio), len(deleted))
	if len(acked) == 0 {
		t.Fatalf("nothing was acknowledged; stderr:\n%s", p.Output.String())
	}

	// Restart with the same directory; the queue-like config makes every
	// item come out exactly once.
	enum := testutil.WriteFile(t, "enum.yaml", enumerateTables)
	p2 := startProcess(t, nil, "--addr", "127.0.0.1:0", "--config", enum, "--checkpoint-dir", dir, "--durable")
	addr2 := testutil.WaitFor(t, p2.Output, listenRE)
	c2 := dial(t, addr2)
	si := serverInfo(t, c2)
	size := int(si.Tables[0].Size)
	got := map[int64]float64{}
	s, err := c2.NewSampler("replay", replay.WithMaxSamples(int64(size)), replay.WithRateLimiterTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer scancel()
	for range size {
		smp, err := s.Next(sctx)
		if err != nil {
			t.Fatalf("enumerating %d items: %v", size, err)
		}
		id := sampleID(t, smp)
		if _, dup := got[id]; dup {
			t.Errorf("item %d restored twice", id)
		}
		got[id] = smp.Info.Priority
	}
	s.Close()

	for id := range acked {
		p, ok := got[id]
		allowed := []float64{priorityOf(id)}
		if up, ok := prio[id]; ok {
			allowed = []float64{up} // the last acknowledged update
		}
		if up, ok := pending[id]; ok {
			allowed = append(allowed, up) // in flight at the kill
		}
		switch {
		case deleted[id]:
			if ok {
				t.Errorf("item %d: acknowledged delete undone", id)
			}
		case maybeDeleted[id]:
		case !ok:
			t.Errorf("item %d: acknowledged insert lost", id)
		case !slices.Contains(allowed, p):
			t.Errorf("item %d: priority %v, want one of %v", id, p, allowed)
		}
	}
	for id := range got {
		if !created[id] {
			t.Errorf("item %d restored but never created", id)
		}
	}
	if t.Failed() {
		t.Logf("restarted replayd stderr:\n%s", p2.Output.String())
	}
	p2.Signal(t, syscall.SIGTERM)
	if code := p2.Wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if errors.Is(sctx.Err(), context.DeadlineExceeded) {
		t.Error("enumeration timed out")
	}
}
