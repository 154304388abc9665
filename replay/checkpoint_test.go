package replay

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// logBuffer collects a server's logs for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// ckptServer starts a server with a checkpoint directory. The returned
// stop shuts it down cleanly (it is also called at cleanup).
func ckptServer(t testing.TB, opts ServerOptions, dir string, logs *logBuffer) (*testServer, func()) {
	t.Helper()
	opts.Checkpoint.Dir = dir
	if logs != nil {
		opts.Logger = logs.logger()
	}
	ts := startServer(t, opts)
	return ts, ts.srv.Stop
}

func mustLimiter(c ratelimit.Config, err error) ratelimit.Config {
	if err != nil {
		panic(err)
	}
	return c
}

// allKindsTables covers every selector as sampler and remover, every
// limiter form, max_times_sampled and a signature.
func allKindsTables() []table.Options {
	q, _ := table.QueueOptions("queue", 20)
	st, _ := table.StackOptions("stack", 20)
	q.Seed, st.Seed = 3, 4
	sig := &table.Signature{Columns: []table.ColumnSpec{{Name: "x", DType: tensor.Int64, Shape: []int{}}}}
	return []table.Options{
		{Name: "uniform", Sampler: sampler.UniformSpec(), Remover: sampler.FIFOSpec(), MaxSize: 100, RateLimiter: mustLimiter(ratelimit.MinSize(2)), Seed: 1},
		{Name: "prio", Sampler: sampler.PrioritizedSpec(0.8), Remover: sampler.PrioritizedSpec(0.5), MaxSize: 100,
			RateLimiter: mustLimiter(ratelimit.SampleToInsertRatio(2, 3, 30)), Seed: 2, Signature: sig},
		q, st,
		{Name: "minheap", Sampler: sampler.MinHeapSpec(), Remover: sampler.MaxHeapSpec(), MaxSize: 6,
			RateLimiter: mustLimiter(ratelimit.New(1.5, 2, -50, 200)), MaxTimesSampled: 3, Seed: 5},
		{Name: "maxheap", Sampler: sampler.MaxHeapSpec(), Remover: sampler.MinHeapSpec(), MaxSize: 100,
			RateLimiter: mustLimiter(ratelimit.MinSize(1)), Seed: 6},
		{Name: "lifo", Sampler: sampler.LIFOSpec(), Remover: sampler.LIFOSpec(), MaxSize: 4, RateLimiter: mustLimiter(ratelimit.MinSize(1)), Seed: 7},
	}
}

// insertItems inserts n items into each named table through the insert
// RPC, one chunk per item, every chunk also used by an item of the next
// table (chunks shared across tables). Keys are base+i; priorities differ.
func insertItems(t testing.TB, c *Client, tables []string, base uint64, n int) {
	t.Helper()
	ctx := context.Background()
	var chunks []*table.Chunk
	var items []insertItem
	for i := 0; i < n; i++ {
		key := base + uint64(i)
		ch := encodeChunk(t, key, key/3, "x", tensor.Scalar(int64(key)))
		chunks = append(chunks, ch)
		for j, name := range tables {
			items = append(items, insertItem{table: name, key: key + uint64(j)<<32, priority: float64(i%7) + float64(j)/10 + float64(i)/1000, trajectory: whole(ch)})
		}
	}
	keys := make([]uint64, len(chunks))
	for i, ch := range chunks {
		keys[i] = ch.Key
	}
	acked, err := rawInsert(ctx, c, chunks, items, keys)
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	if len(acked) != len(items) {
		t.Fatalf("acked %d of %d items", len(acked), len(items))
	}
}

func snapshotAll(t testing.TB, s *Server) map[string]*table.Snapshot {
	t.Helper()
	out := make(map[string]*table.Snapshot)
	for _, name := range s.names {
		snap, err := s.Table(name).Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = snap
	}
	return out
}

// sameSnapshot compares two snapshots item by item, chunk data included.
func sameSnapshot(t testing.TB, name string, got, want *table.Snapshot) {
	t.Helper()
	if got.Limiter != want.Limiter || got.NumDeletedEpisodes != want.NumDeletedEpisodes || got.NumUniqueSamples != want.NumUniqueSamples {
		t.Errorf("table %s: counters %+v/%d/%d, want %+v/%d/%d", name, got.Limiter, got.NumDeletedEpisodes, got.NumUniqueSamples,
			want.Limiter, want.NumDeletedEpisodes, want.NumUniqueSamples)
	}
	if len(got.Items) != len(want.Items) {
		t.Fatalf("table %s: %d items, want %d", name, len(got.Items), len(want.Items))
	}
	for i := range got.Items {
		g, w := got.Items[i], want.Items[i]
		if g.Key != w.Key || g.Priority != w.Priority || g.TimesSampled != w.TimesSampled || !g.InsertedAt.Equal(w.InsertedAt) ||
			!reflect.DeepEqual(g.Trajectory, w.Trajectory) || len(g.Chunks) != len(w.Chunks) {
			t.Fatalf("table %s item %d: %+v, want %+v", name, i, g, w)
		}
		for j := range g.Chunks {
			gc, wc := g.Chunks[j], w.Chunks[j]
			if gc.Key != wc.Key || gc.EpisodeID != wc.EpisodeID || gc.Start != wc.Start || gc.Length != wc.Length ||
				!reflect.DeepEqual(gc.Columns, wc.Columns) || !bytes.Equal(gc.Data, wc.Data) {
				t.Fatalf("table %s item %d chunk %d: %+v, want %+v", name, i, j, gc, wc)
			}
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tables := allKindsTables()
	names := make([]string, len(tables))
	for i, o := range tables {
		names[i] = o.Name
	}
	ts, stop := ckptServer(t, ServerOptions{Tables: tables}, dir, nil)
	c := dial(t, ts.addr)
	ctx := context.Background()
	insertItems(t, c, names, 1000, 12)
	// Sample from every table (times sampled, limiter and unique-sample
	// counters, deletes at max_times_sampled), mutate some priorities.
	for _, name := range names {
		tb := ts.srv.Table(name)
		for i := 0; i < 5 && tb.CanSample(1); i++ {
			if _, err := tb.Sample(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.MutatePriorities(ctx, "maxheap", map[uint64]float64{1000 + 5<<32: 42.5}, []uint64{1001 + 5<<32}); err != nil {
		t.Fatal(err)
	}
	path, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir || !strings.HasPrefix(filepath.Base(path), checkpointPrefix) {
		t.Fatalf("checkpoint path %q", path)
	}
	before := snapshotAll(t, ts.srv)
	infoBefore := ts.srv.Info()
	stop()

	ts2, _ := ckptServer(t, ServerOptions{Tables: allKindsTables()}, dir, nil)
	after := snapshotAll(t, ts2.srv)
	for _, name := range names {
		sameSnapshot(t, name, after[name], before[name])
		if got, want := after[name].Options, before[name].Options; !reflect.DeepEqual(got, want) {
			t.Errorf("table %s options %+v, want %+v", name, got, want)
		}
	}
	infoAfter := ts2.srv.Info()
	for i := range infoBefore.Tables {
		b, a := infoBefore.Tables[i], infoAfter.Tables[i]
		if a.Size != b.Size || a.NumEpisodes != b.NumEpisodes || a.Limiter != b.Limiter || a.SampleBlockedReason != b.SampleBlockedReason || a.InsertBlockedReason != b.InsertBlockedReason {
			t.Errorf("table %s info after restore %+v, want %+v", a.Name, a, b)
		}
	}

	// Selector state: the deterministic selectors pick what the captured
	// order and priorities say; the prioritized one reports p^a/sum(p^a)
	// over the restored priorities.
	checkDeterministicOrder(t, ts2.srv, before)
	prio := after["prio"]
	sum := 0.0
	for _, it := range prio.Items {
		sum += math.Pow(it.Priority, 0.8)
	}
	smp, err := ts2.srv.Table("prio").Sample(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Pow(smp[0].Info.Priority, 0.8) / sum; math.Abs(smp[0].Info.Probability-want) > 1e-9 {
		t.Errorf("prioritized probability %v after restore, want %v", smp[0].Info.Probability, want)
	}

	// Chunks are stored once however many items (and tables) use them.
	infos, err := ListCheckpoints(dir, InspectOptions{})
	if err != nil || len(infos) != 1 {
		t.Fatalf("ListCheckpoints: %v, %v", infos, err)
	}
	distinct := map[uint64]bool{}
	for _, s := range before {
		for _, it := range s.Items {
			for _, ch := range it.Chunks {
				distinct[ch.Key] = true
			}
		}
	}
	if infos[0].NumChunks != int64(len(distinct)) || infos[0].Err != nil || !infos[0].Restore {
		t.Errorf("checkpoint info %+v: want %d chunks", infos[0], len(distinct))
	}
}

// checkDeterministicOrder checks that the first sample of each table with
// a deterministic sampler is the item the snapshot says it should be.
func checkDeterministicOrder(t *testing.T, s *Server, before map[string]*table.Snapshot) {
	t.Helper()
	for name, snap := range before {
		if len(snap.Items) == 0 || !s.Table(name).CanSample(1) {
			continue
		}
		var want uint64
		switch snap.Options.Sampler.Kind {
		case sampler.KindFIFO:
			want = snap.Items[0].Key
		case sampler.KindLIFO:
			want = snap.Items[len(snap.Items)-1].Key
		case sampler.KindMinHeap:
			want = slices.MinFunc(snap.Items, func(a, b table.SnapshotItem) int { return cmp.Compare(a.Priority, b.Priority) }).Key
		case sampler.KindMaxHeap:
			want = slices.MaxFunc(snap.Items, func(a, b table.SnapshotItem) int { return cmp.Compare(a.Priority, b.Priority) }).Key
		default:
			continue
		}
		smp, err := s.Table(name).Sample(context.Background(), 1)
		if err != nil {
			t.Fatalf("sample %s: %v", name, err)
		}
		if smp[0].Info.Key != want {
			t.Errorf("table %s: first sample after restore is %d, want %d", name, smp[0].Info.Key, want)
		}
	}
}

// copyDir copies a directory tree (a crash image when nothing writes
// meanwhile: every acknowledged write was synced).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// largestFile returns the biggest file under dir.
func largestFile(t testing.TB, dir string) string {
	t.Helper()
	var best string
	var size int64 = -1
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "LOCK" {
			if info, err := d.Info(); err == nil && info.Size() > size {
				best, size = p, info.Size()
			}
		}
		return nil
	})
	return best
}

func simpleTables() []table.Options {
	return []table.Options{
		{Name: "a", Sampler: sampler.FIFOSpec(), MaxSize: 1000, Seed: 1},
		{Name: "b", Sampler: sampler.UniformSpec(), MaxSize: 1000, Seed: 2},
	}
}

func TestCheckpointCorruptionIsDetected(t *testing.T) {
	dir := t.TempDir()
	ts, stop := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, nil)
	c := dial(t, ts.addr)
	ctx := context.Background()
	insertItems(t, c, []string{"a", "b"}, 1, 50)
	older, err := ts.srv.WriteCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insertItems(t, c, []string{"a"}, 100, 5)
	newer, err := ts.srv.WriteCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop()

	damage := map[string]func(t *testing.T, ck string){
		"flipped byte": func(t *testing.T, ck string) {
			f := largestFile(t, filepath.Join(ck, storeDirName))
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x40
			if err := os.WriteFile(f, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"truncated file": func(t *testing.T, ck string) {
			f := largestFile(t, filepath.Join(ck, storeDirName))
			info, _ := os.Stat(f)
			if err := os.Truncate(f, info.Size()/2); err != nil {
				t.Fatal(err)
			}
		},
		"missing file": func(t *testing.T, ck string) {
			if err := os.Remove(largestFile(t, filepath.Join(ck, storeDirName))); err != nil {
				t.Fatal(err)
			}
		},
		"missing manifest": func(t *testing.T, ck string) {
			if err := os.Remove(filepath.Join(ck, manifestName)); err != nil {
				t.Fatal(err)
			}
		},
		"edited manifest": func(t *testing.T, ck string) {
			p := filepath.Join(ck, manifestName)
			data, _ := os.ReadFile(p)
			edited := bytes.Replace(data, []byte(`"items": 55`), []byte(`"items": 56`), 1)
			if bytes.Equal(edited, data) {
				t.Fatalf("manifest has no item count to edit:\n%s", data)
			}
			data = edited
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			copyDir(t, dir, d)
			fn(t, filepath.Join(d, filepath.Base(newer)))
			infos, err := ListCheckpoints(d, InspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 2 || !errors.Is(infos[0].Err, ErrCorruptCheckpoint) || infos[1].Err != nil || !infos[1].Restore {
				t.Fatalf("ListCheckpoints: %+v", infos)
			}
			// The server reports the corrupt checkpoint and restores the
			// previous one.
			var logs logBuffer
			ts, _ := ckptServer(t, ServerOptions{Tables: simpleTables()}, d, &logs)
			if got := ts.srv.Table("a").Size(); got != 50 {
				t.Errorf("restored %d items into a, want 50 (the older checkpoint)", got)
			}
			if out := logs.String(); !strings.Contains(out, "checkpoint is unusable; trying the previous one") || !strings.Contains(out, filepath.Base(newer)) {
				t.Errorf("logs lack the corruption report:\n%s", out)
			}
			if !strings.Contains(logs.String(), "from="+filepath.Join(d, filepath.Base(older))) {
				t.Errorf("logs do not name the restored checkpoint:\n%s", logs.String())
			}
		})
	}

	t.Run("all corrupt", func(t *testing.T) {
		d := t.TempDir()
		copyDir(t, dir, d)
		for _, ck := range []string{older, newer} {
			damage["flipped byte"](t, filepath.Join(d, filepath.Base(ck)))
		}
		opts := ServerOptions{Tables: simpleTables(), Logger: discardLogger()}
		opts.Checkpoint.Dir = d
		_, err := NewServer(opts)
		if err == nil || !strings.Contains(err.Error(), "no usable checkpoint") || !strings.Contains(err.Error(), filepath.Base(older)) {
			t.Fatalf("NewServer: %v", err)
		}
	})

	t.Run("interrupted write", func(t *testing.T) {
		d := t.TempDir()
		copyDir(t, dir, d)
		// A newer checkpoint whose write was interrupted: never loaded,
		// deleted at start.
		tmp := filepath.Join(d, checkpointName(time.Now().Add(time.Hour))+tmpSuffix)
		copyDir(t, filepath.Join(d, filepath.Base(older)), tmp)
		var logs logBuffer
		ts, _ := ckptServer(t, ServerOptions{Tables: simpleTables()}, d, &logs)
		if got := ts.srv.Table("a").Size(); got != 55 {
			t.Errorf("restored %d items into a, want 55 (the newer complete checkpoint)", got)
		}
		if exists(tmp) {
			t.Errorf("%s was not deleted", tmp)
		}
		if !strings.Contains(logs.String(), "deleting an incomplete checkpoint") {
			t.Errorf("logs:\n%s", logs.String())
		}
	})
}

func TestCheckpointKeepAndPeriodic(t *testing.T) {
	dir := t.TempDir()
	opts := ServerOptions{Tables: simpleTables()}
	opts.Checkpoint.Keep = 2
	ts, stop := ckptServer(t, opts, dir, nil)
	c := dial(t, ts.addr)
	var paths []string
	for i := 0; i < 4; i++ {
		insertItems(t, c, []string{"a"}, uint64(10*i+1), 2)
		p, err := c.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	names, err := checkpointNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Base(paths[3]), filepath.Base(paths[2])}
	if !slices.Equal(names, want) {
		t.Fatalf("kept %v, want %v", names, want)
	}
	stop()

	dir2 := t.TempDir()
	opts.Checkpoint.Interval = 30 * time.Millisecond
	ts2, stop2 := ckptServer(t, opts, dir2, nil)
	insertItems(t, dial(t, ts2.addr), []string{"b"}, 1, 3)
	inserted := time.Now()
	// Two kept, the newest captured after the insert (older ones may
	// predate it).
	waitUntil(t, func() bool {
		names, _ := checkpointNames(dir2)
		if len(names) != 2 {
			return false
		}
		created, _ := parseCheckpointName(names[0])
		return created.After(inserted)
	})
	stop2()
	ts3, _ := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir2, nil)
	if got := ts3.srv.Table("b").Size(); got != 3 {
		t.Errorf("restored %d items from a periodic checkpoint, want 3", got)
	}
}

func TestCheckpointTableMissingFromConfig(t *testing.T) {
	dir := t.TempDir()
	ts, stop := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, nil)
	insertItems(t, dial(t, ts.addr), []string{"a", "b"}, 1, 3)
	if _, err := ts.srv.WriteCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop()

	for name, tables := range map[string][]table.Options{
		"renamed": {{Name: "a", Sampler: sampler.FIFOSpec()}, {Name: "b2"}},
		"missing": {{Name: "a", Sampler: sampler.FIFOSpec()}},
	} {
		t.Run(name, func(t *testing.T) {
			opts := ServerOptions{Tables: tables, Logger: discardLogger()}
			opts.Checkpoint.Dir = dir
			_, err := NewServer(opts)
			if !errors.Is(err, ErrCheckpointConfig) || !strings.Contains(err.Error(), `holds table "b", which the config does not define`) {
				t.Fatalf("NewServer: %v", err)
			}
			t.Log(err)
		})
	}
	// The checkpoint is untouched: the original config still restores it.
	ts2, _ := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, nil)
	if ts2.srv.Table("b").Size() != 3 {
		t.Error("checkpoint lost after a refused start")
	}
}

func TestCheckpointConfigOptionsWin(t *testing.T) {
	dir := t.TempDir()
	ts, stop := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, nil)
	insertItems(t, dial(t, ts.addr), []string{"a"}, 1, 10)
	if _, err := ts.srv.WriteCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop()

	tables := simpleTables()
	tables[0].MaxSize = 4
	tables[0].Sampler = sampler.LIFOSpec()
	var logs logBuffer
	ts2, _ := ckptServer(t, ServerOptions{Tables: tables}, dir, &logs)
	snap, err := ts2.srv.Table("a").Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var keys []uint64
	for _, it := range snap.Items {
		keys = append(keys, it.Key)
	}
	// The FIFO remover evicts the oldest six.
	if want := []uint64{7, 8, 9, 10}; !slices.Equal(keys, want) {
		t.Errorf("kept %v, want %v", keys, want)
	}
	in := ts2.srv.Table("a").Info()
	if in.Sampler != sampler.LIFOSpec() || in.Limiter.Inserts-in.Limiter.Deletes != 4 {
		t.Errorf("info %+v", in)
	}
	for _, want := range []string{"table options differ from the checkpoint; the config's options apply", "max_size: checkpoint 1000, config 4", "evicted the excess in remover order"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestCheckpointRestoredLimiterExplainsBlocking(t *testing.T) {
	dir := t.TempDir()
	tables := []table.Options{{Name: "r", MaxSize: 100, RateLimiter: mustLimiter(ratelimit.SampleToInsertRatio(1, 2, 2)), Seed: 1}}
	ts, stop := ckptServer(t, ServerOptions{Tables: tables}, dir, nil)
	c := dial(t, ts.addr)
	insertItems(t, c, []string{"r"}, 1, 3)
	// diff = 3*1 - samples; sampling blocks once diff-1 < min_diff = 0.
	for ts.srv.Table("r").CanSample(1) {
		if _, err := ts.srv.Table("r").Sample(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
	}
	reason := ts.srv.Table("r").Info().SampleBlockedReason
	if reason == "" {
		t.Fatal("sampling is not blocked")
	}
	if _, err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop()

	var logs logBuffer
	ts2, _ := ckptServer(t, ServerOptions{Tables: tables}, dir, &logs)
	si, err := dial(t, ts2.addr).ServerInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := si.Tables[0].SampleBlockedReason; got != reason {
		t.Errorf("restored sample_blocked_reason %q, want %q", got, reason)
	}
	if out := logs.String(); !strings.Contains(out, "restored table cannot be sampled until its rate limiter allows it") || !strings.Contains(out, reason) {
		t.Errorf("restore did not log why sampling blocks:\n%s", out)
	}
	ci, _, err := InspectCheckpoint(dir, InspectOptions{})
	if err != nil || ci.Tables[0].SampleBlockedReason != reason {
		t.Errorf("inspect: %+v, %v", ci, err)
	}
}

func TestCheckpointOffAndBadOptions(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	if _, err := ts.srv.WriteCheckpoint(context.Background()); !errors.Is(err, ErrCheckpointsOff) || !errors.Is(err, ErrUnimplemented) {
		t.Errorf("WriteCheckpoint without a dir: %v", err)
	}
	for _, co := range []CheckpointOptions{
		{Durable: true},
		{Interval: time.Second},
		{Dir: t.TempDir(), Keep: -1},
		{Dir: t.TempDir(), SyncInterval: -time.Second},
	} {
		opts := oneTable(table.Options{})
		opts.Checkpoint = co
		if _, err := NewServer(opts); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("NewServer(%+v): %v", co, err)
		}
	}
}

func TestInspectCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ts, stop := ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, nil)
	insertItems(t, dial(t, ts.addr), []string{"a", "b"}, 1, 4)
	path, err := ts.srv.WriteCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	for _, p := range []string{dir, path} {
		ci, items, err := InspectCheckpoint(p, InspectOptions{Items: 2})
		if err != nil {
			t.Fatal(err)
		}
		if ci.Path != path || ci.Kind != storeKindCheckpoint || len(ci.Tables) != 2 || ci.Tables[0].Items != 4 || ci.NumChunks != 4 || ci.DiskBytes == 0 {
			t.Errorf("InspectCheckpoint(%s) = %+v", p, ci)
		}
		if len(items) != 4 || items[0].Table != "a" || items[0].Key != 1 || items[1].Key != 2 || items[2].Table != "b" {
			t.Errorf("items %+v", items)
		}
		if ci.Tables[0].Options.Sampler != sampler.FIFOSpec() || ci.Tables[0].Limiter.Inserts != 4 {
			t.Errorf("table %+v", ci.Tables[0])
		}
	}
	if _, _, err := InspectCheckpoint(t.TempDir(), InspectOptions{}); err == nil || !strings.Contains(err.Error(), "no checkpoint in") {
		t.Errorf("empty dir: %v", err)
	}
}

func ExampleServer_WriteCheckpoint() {
	dir, _ := os.MkdirTemp("", "example-checkpoints-")
	defer os.RemoveAll(dir)
	opts := ServerOptions{Tables: []table.Options{{Name: "replay"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.Checkpoint = CheckpointOptions{Dir: dir, Keep: 2}
	srv, err := NewServer(opts)
	if err != nil {
		panic(err)
	}
	path, err := srv.WriteCheckpoint(context.Background())
	if err != nil {
		panic(err)
	}
	srv.Stop()
	fmt.Println(strings.HasPrefix(filepath.Base(path), "ckpt-"))
	// Output: true
}

func TestCheckpointDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	ckptServer(t, ServerOptions{Tables: simpleTables()}, dir, nil)
	opts := ServerOptions{Tables: simpleTables(), Logger: discardLogger()}
	opts.Checkpoint.Dir = dir
	if _, err := NewServer(opts); err == nil || !strings.Contains(err.Error(), "in use by another server") {
		t.Fatalf("second server on %s: %v", dir, err)
	}
	infos, err := ListCheckpoints(dir, InspectOptions{})
	if err != nil || len(infos) != 0 {
		t.Errorf("ListCheckpoints: %+v, %v", infos, err)
	}
}
