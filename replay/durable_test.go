package replay

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// durableServer starts a server in durable mode on dir. Reconcile runs only
// when a test asks (or at shutdown).
func durableServer(t testing.TB, tables []table.Options, dir string, logs *logBuffer) *testServer {
	t.Helper()
	opts := ServerOptions{Tables: tables}
	opts.Checkpoint = CheckpointOptions{Durable: true, ReconcileInterval: time.Hour}
	ts, _ := ckptServer(t, opts, dir, logs)
	if ts.srv.durable == nil {
		t.Fatal("durable mode is off")
	}
	return ts
}

// crashImage copies a running server's checkpoint directory: since every
// acknowledged change was synced, the copy is what a SIGKILL would leave
// (nothing may write meanwhile; the tests keep stores small so that Pebble
// does not flush in the background).
func crashImage(t testing.TB, dir string) string {
	t.Helper()
	img := t.TempDir()
	copyDir(t, dir, img)
	return img
}

// itemState maps key to priority.
func itemState(t testing.TB, s *Server, name string) map[uint64]float64 {
	t.Helper()
	snap, err := s.Table(name).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[uint64]float64, len(snap.Items))
	for _, it := range snap.Items {
		out[it.Key] = it.Priority
	}
	return out
}

func sameState(t testing.TB, what string, got, want map[uint64]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d items, want %d", what, len(got), len(want))
	}
	for k, p := range want {
		if g, ok := got[k]; !ok || g != p {
			t.Errorf("%s: item %d has priority %v (present %v), want %v", what, k, g, ok, p)
		}
	}
}

func TestDurableCrashKeepsAcknowledgedChanges(t *testing.T) {
	dir := t.TempDir()
	ts := durableServer(t, simpleTables(), dir, nil)
	c := dial(t, ts.addr)
	ctx := context.Background()
	insertItems(t, c, []string{"a", "b"}, 1, 40)
	if err := c.MutatePriorities(ctx, "a", map[uint64]float64{5: 7.5, 6: 0}, []uint64{7, 8, 999}); err != nil {
		t.Fatal(err)
	}
	insertItems(t, c, []string{"a"}, 100, 3) // after the mutation
	if err := c.Reset(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	insertItems(t, c, []string{"b"}, 200, 2) // after the reset
	want := map[string]map[uint64]float64{"a": itemState(t, ts.srv, "a"), "b": itemState(t, ts.srv, "b")}
	if len(want["a"]) != 41 || want["a"][5] != 7.5 || len(want["b"]) != 2 {
		t.Fatalf("unexpected state before the crash: %d items in a, %d in b", len(want["a"]), len(want["b"]))
	}
	img := crashImage(t, dir)

	var logs logBuffer
	ts2 := durableServer(t, simpleTables(), img, &logs)
	for _, name := range []string{"a", "b"} {
		sameState(t, "table "+name+" after the crash", itemState(t, ts2.srv, name), want[name])
	}
	if !strings.Contains(logs.String(), "from="+filepath.Join(img, durableName)) {
		t.Errorf("not restored from the durable store:\n%s", logs.String())
	}
	// Chunk data comes back too: sample everything of a and check it.
	snap, _ := ts2.srv.Table("a").Snapshot()
	for _, it := range snap.Items {
		if len(it.Chunks) != 1 || it.Chunks[0].Key != it.Key || len(it.Chunks[0].Data) == 0 {
			t.Fatalf("item %d chunks %+v", it.Key, it.Chunks)
		}
	}
	in := ts2.srv.Table("a").Info()
	if in.Limiter.Inserts-in.Limiter.Deletes != 41 || in.Limiter.Deletes != 2 {
		t.Errorf("limiter after the crash %+v", in.Limiter)
	}
}

func TestDurableLazyChangesAndCleanShutdown(t *testing.T) {
	dir := t.TempDir()
	tables := []table.Options{{Name: "q", Sampler: sampler.FIFOSpec(), Remover: sampler.FIFOSpec(), MaxSize: 5, MaxTimesSampled: 2, Seed: 1}}
	ts := durableServer(t, tables, dir, nil)
	c := dial(t, ts.addr)
	ctx := context.Background()
	insertItems(t, c, []string{"q"}, 1, 12) // 7 evicted inside the table
	for i := 0; i < 3; i++ {
		if _, err := ts.srv.Table("q").Sample(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	want, err := ts.srv.Table("q").Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	// Before a reconcile the store still holds the evicted items; restore
	// evicts them again in remover order, so the same items come back
	// (times sampled and the sample count lag).
	img := crashImage(t, dir)
	var logs logBuffer
	ts2 := durableServer(t, tables, img, &logs)
	got, _ := ts2.srv.Table("q").Snapshot()
	if !slices.Equal(keysOf(got), []uint64{8, 9, 10, 11, 12}) {
		t.Errorf("restored keys %v, want 8..12", keysOf(got))
	}
	if !strings.Contains(logs.String(), "evicted the excess in remover order") {
		t.Errorf("logs:\n%s", logs.String())
	}
	ts2.srv.Stop()

	// After a reconcile the crash image is exact.
	if err := ts.srv.durable.reconcile(false); err != nil {
		t.Fatal(err)
	}
	img = crashImage(t, dir)
	ts3 := durableServer(t, tables, img, nil)
	got, _ = ts3.srv.Table("q").Snapshot()
	sameSnapshot(t, "q after reconcile and crash", got, want)
	ts3.srv.Stop()

	// A clean shutdown writes everything, inserted_at included.
	if _, err := ts.srv.Table("q").Sample(ctx, 2); err != nil {
		t.Fatal(err)
	}
	want, _ = ts.srv.Table("q").Snapshot()
	ts.srv.Stop()
	ts4 := durableServer(t, tables, dir, nil)
	got, _ = ts4.srv.Table("q").Snapshot()
	sameSnapshot(t, "q after a clean restart", got, want)
}

func keysOf(s *table.Snapshot) []uint64 {
	out := []uint64{}
	for _, it := range s.Items {
		out = append(out, it.Key)
	}
	return out
}

// An explicit mutation of a key whose insert is in flight (in the table,
// not yet committed) takes effect after the insert, in the table and in
// the store, whichever order the table saw them in.
func TestDurableMutationRacingInsert(t *testing.T) {
	dir := t.TempDir()
	ts := durableServer(t, simpleTables(), dir, nil)
	s, d := ts.srv, ts.srv.durable
	ctx := context.Background()
	tb := s.Table("a")
	key := uint64(100)
	insert := func() (*insertRequest, func()) {
		key++
		ch := encodeChunk(t, key, 1, "x", tensor.Scalar(int64(key)))
		req := &insertRequest{chunks: []*table.Chunk{ch}, items: []insertItem{{table: "a", key: key, priority: 1, trajectory: whole(ch)}}}
		return req, func() {
			ref := s.Chunks().Add(ch)
			defer ref.Release()
			if err := tb.Insert(ctx, table.Item{Key: key, Priority: 1, Trajectory: whole(ch), Chunks: []*table.ChunkRef{ref}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit := func(tok durableToken, req *insertRequest) {
		if _, err := d.commitInsert(tok, req, []uint64{req.items[0].key}, nil); err != nil {
			t.Fatal(err)
		}
	}
	type outcome struct {
		present  bool
		priority float64
	}
	want := map[uint64]outcome{}

	// Delete after the table insert, before the commit.
	req, ins := insert()
	tok := d.begin(req, nil)
	ins()
	if err := s.mutatePriorities(ctx, tb, nil, []uint64{key}); err != nil {
		t.Fatal(err)
	}
	commit(tok, req)
	want[key] = outcome{}

	// Delete before the table insert (a no-op in the table then).
	req, ins = insert()
	tok = d.begin(req, nil)
	if err := s.mutatePriorities(ctx, tb, nil, []uint64{key}); err != nil {
		t.Fatal(err)
	}
	ins()
	commit(tok, req)
	want[key] = outcome{}

	// Update after the table insert.
	req, ins = insert()
	tok = d.begin(req, nil)
	ins()
	if err := s.mutatePriorities(ctx, tb, map[uint64]float64{key: 9}, nil); err != nil {
		t.Fatal(err)
	}
	commit(tok, req)
	want[key] = outcome{true, 9}

	// Update before the table insert.
	req, ins = insert()
	tok = d.begin(req, nil)
	if err := s.mutatePriorities(ctx, tb, map[uint64]float64{key: 4}, nil); err != nil {
		t.Fatal(err)
	}
	ins()
	commit(tok, req)
	want[key] = outcome{true, 4}

	// Reset while inserting: the insert after the reset survives.
	req, ins = insert()
	tok = d.begin(req, nil)
	if err := s.resetTable(ctx, tb); err != nil {
		t.Fatal(err)
	}
	ins()
	commit(tok, req)
	want[key] = outcome{true, 1}
	for k := range want {
		if k < key {
			want[k] = outcome{} // reset
		}
	}
	// No conflict: a plain insert.
	req, ins = insert()
	tok = d.begin(req, nil)
	ins()
	commit(tok, req)
	want[key] = outcome{true, 1}

	check := func(what string, s *Server) {
		t.Helper()
		state := itemState(t, s, "a")
		for k, o := range want {
			p, ok := state[k]
			if ok != o.present || (ok && p != o.priority) {
				t.Errorf("%s: item %d present %v priority %v, want %+v", what, k, ok, p, o)
			}
		}
	}
	check("table", s)
	for k, o := range want {
		di := d.tables["a"].items[k]
		if (di != nil) != o.present || (di != nil && di.priority != o.priority) {
			t.Errorf("store: item %d %+v, want %+v", k, di, o)
		}
	}
	if len(d.recent) != 0 || len(d.inflight) != 0 {
		t.Errorf("%d recent mutations and %d inserts still tracked", len(d.recent), len(d.inflight))
	}
	ts2 := durableServer(t, simpleTables(), crashImage(t, dir), nil)
	check("after a crash", ts2.srv)
}

// Concurrent inserters, a sampler that deletes and re-prioritises what it
// samples, then a crash: every acknowledged insert is back unless its
// delete was acknowledged, with its last acknowledged priority.
func TestDurableConcurrentClients(t *testing.T) {
	dir := t.TempDir()
	tables := []table.Options{{Name: "a", MaxSize: 100000, Seed: 1}}
	ts := durableServer(t, tables, dir, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	want := map[uint64]float64{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := dial(t, ts.addr)
			for b := 0; b < 20; b++ {
				var chunks []*table.Chunk
				var items []insertItem
				for i := 0; i < 8; i++ {
					key := uint64(w)<<40 | uint64(b*8+i+1)
					ch := encodeChunk(t, key, uint64(w), "x", tensor.Scalar(int64(key)))
					chunks = append(chunks, ch)
					items = append(items, insertItem{table: "a", key: key, priority: float64(i + 1), trajectory: whole(ch)})
				}
				acked, err := rawInsert(ctx, c, chunks, items, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, k := range acked {
					// A mutation of a sampled key may have been acknowledged
					// before its insert was: it applies after the insert.
					if _, ok := want[k]; !ok {
						want[k] = items[i].priority
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	done := make(chan struct{})
	var mwg sync.WaitGroup
	mwg.Add(1)
	go func() {
		defer mwg.Done()
		c := dial(t, ts.addr)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-done:
				return
			default:
			}
			if !ts.srv.Table("a").CanSample(1) {
				time.Sleep(time.Millisecond)
				continue
			}
			smp, err := ts.srv.Table("a").Sample(ctx, 4)
			if err != nil {
				t.Error(err)
				return
			}
			upd := map[uint64]float64{}
			var del []uint64
			for _, s := range smp {
				if rng.IntN(3) == 0 {
					del = append(del, s.Info.Key)
				} else {
					upd[s.Info.Key] = float64(rng.IntN(100)) + 0.5
				}
			}
			for _, k := range del {
				delete(upd, k)
			}
			if err := c.MutatePriorities(ctx, "a", upd, del); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for k, p := range upd {
				want[k] = p
			}
			for _, k := range del {
				want[k] = -1
			}
			mu.Unlock()
		}
	}()
	wg.Wait()
	close(done)
	mwg.Wait()
	for k, p := range want {
		if p < 0 {
			delete(want, k)
		}
	}
	sameState(t, "table before the crash", itemState(t, ts.srv, "a"), want)
	ts2 := durableServer(t, tables, crashImage(t, dir), nil)
	sameState(t, "table after the crash", itemState(t, ts2.srv, "a"), want)
}

// durableNewerThanCheckpoint returns the directory of a stopped durable
// server that checkpointed items 1-5 of table a and then inserted 10-14.
func durableNewerThanCheckpoint(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ts := durableServer(t, simpleTables(), dir, nil)
	c := dial(t, ts.addr)
	insertItems(t, c, []string{"a"}, 1, 5)
	if _, err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	insertItems(t, c, []string{"a"}, 10, 5)
	ts.srv.Stop()
	return dir
}

// The newest state wins: the durable store over older checkpoints, a
// checkpoint written later (by a server without durable mode) over the
// durable store, which is then rebuilt from it.
func TestDurablePrecedence(t *testing.T) {
	dir := durableNewerThanCheckpoint(t)

	// A server without durable mode restores the durable store (newer than
	// the checkpoint), then writes a checkpoint of more items.
	var logs logBuffer
	ts2, stop2 := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, &logs)
	if got := ts2.srv.Table("a").Size(); got != 10 {
		t.Fatalf("restored %d items, want 10 (from the durable store)", got)
	}
	insertItems(t, dial(t, ts2.addr), []string{"a"}, 20, 5)
	if _, err := ts2.srv.WriteCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop2()

	logs = logBuffer{}
	ts3 := durableServer(t, simpleTables(), dir, &logs)
	if got := ts3.srv.Table("a").Size(); got != 15 {
		t.Fatalf("restored %d items, want 15 (from the newer checkpoint)", got)
	}
	if !strings.Contains(logs.String(), "a checkpoint is newer than the durable store") {
		t.Errorf("logs:\n%s", logs.String())
	}
	// The rebuilt durable store holds the checkpoint's state plus what
	// follows.
	insertItems(t, dial(t, ts3.addr), []string{"a"}, 30, 1)
	ts4 := durableServer(t, simpleTables(), crashImage(t, dir), nil)
	if got := ts4.srv.Table("a").Size(); got != 16 {
		t.Fatalf("restored %d items after a crash, want 16", got)
	}
}

func TestDurableInspect(t *testing.T) {
	dir := t.TempDir()
	ts := durableServer(t, simpleTables(), dir, nil)
	insertItems(t, dial(t, ts.addr), []string{"a", "b"}, 1, 3)
	infos, err := ListCheckpoints(dir, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Kind != storeKindDurable || infos[0].Err == nil || !strings.Contains(infos[0].Status(), "in use") {
		t.Errorf("durable store of a running server: %+v", infos)
	}
	ts.srv.Stop()
	ci, items, err := InspectCheckpoint(dir, InspectOptions{Items: -1})
	if err != nil {
		t.Fatal(err)
	}
	if ci.Kind != storeKindDurable || len(ci.Tables) != 2 || ci.Tables[1].Items != 3 || ci.NumChunks != 3 || len(items) != 6 {
		t.Errorf("inspect: %+v, %d items", ci, len(items))
	}
}

// Segments of the chunk log are deleted once no item uses them and
// rewritten once mostly unused, so the log stays near the live data.
func TestDurableChunkLogIsCollected(t *testing.T) {
	defer func(n int64) { segmentBytes = n }(segmentBytes)
	segmentBytes = 4 << 10
	for _, remover := range []sampler.Spec{sampler.FIFOSpec(), sampler.UniformSpec()} {
		t.Run(remover.String(), func(t *testing.T) {
			dir := t.TempDir()
			tables := []table.Options{{Name: "t", Remover: remover, MaxSize: 20, Seed: 1}}
			ts := durableServer(t, tables, dir, nil)
			c := dial(t, ts.addr)
			d := ts.srv.durable
			segments := func() int {
				ents, _ := os.ReadDir(filepath.Join(dir, durableName, chunkLogDirName))
				return len(ents)
			}
			for round := 0; round < 10; round++ {
				insertItems(t, c, []string{"t"}, uint64(1000*round+1), 40)
				if err := d.reconcile(false); err != nil {
					t.Fatal(err)
				}
			}
			live := int64(0)
			for _, loc := range d.chunkLocs {
				live += int64(loc.n)
			}
			disk := diskBytes(filepath.Join(dir, durableName, chunkLogDirName))
			t.Logf("%d segments, %d bytes on disk for %d live", segments(), disk, live)
			if len(d.chunkLocs) != 20 || disk > 4*live+2*segmentBytes+(64<<10) {
				t.Errorf("%d chunks, %d bytes on disk for %d live", len(d.chunkLocs), disk, live)
			}
			want := itemState(t, ts.srv, "t")
			ts2 := durableServer(t, tables, crashImage(t, dir), nil)
			sameState(t, "after a crash", itemState(t, ts2.srv, "t"), want)
			snap, _ := ts2.srv.Table("t").Snapshot()
			for _, it := range snap.Items {
				if it.Chunks[0].Key != it.Key || len(it.Chunks[0].Data) == 0 {
					t.Fatalf("item %d chunk %+v", it.Key, it.Chunks[0])
				}
			}
		})
	}
}

// A durable store that fails its checks is reported, moved aside, and the
// newest checkpoint is restored (and a new durable store built from it).
func TestDurableCorruptStoreFallsBackToCheckpoint(t *testing.T) {
	dir := durableNewerThanCheckpoint(t)

	seg := filepath.Join(dir, durableName, chunkLogDirName, segmentName(1))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0x10
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := InspectCheckpoint(filepath.Join(dir, durableName), InspectOptions{}); err == nil || !strings.Contains(err.Error(), "fails its checksum") {
		t.Errorf("inspect of the damaged durable store: %v", err)
	}

	var logs logBuffer
	ts2 := durableServer(t, simpleTables(), dir, &logs)
	if got := ts2.srv.Table("a").Size(); got != 5 {
		t.Errorf("restored %d items, want the checkpoint's 5", got)
	}
	for _, want := range []string{"the durable store cannot be used; looking for checkpoints", "fails its checksum", "moved the unusable durable store aside"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, durableName+".corrupt-*"))
	if len(matches) != 1 {
		t.Errorf("damaged store kept as %v", matches)
	}
	insertItems(t, dial(t, ts2.addr), []string{"a"}, 20, 1)
	ts3 := durableServer(t, simpleTables(), crashImage(t, dir), nil)
	if got := ts3.srv.Table("a").Size(); got != 6 {
		t.Errorf("restored %d items from the rebuilt durable store, want 6", got)
	}
}
