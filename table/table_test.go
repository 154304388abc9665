package table

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
)

// fixture builds items over chunks of a shared store.
type fixture struct {
	t     testing.TB
	store *ChunkStore
}

func newFixture(t testing.TB) *fixture { return &fixture{t: t, store: NewChunkStore()} }

// chunk stores a one-column chunk of length steps in episode ep.
func (f *fixture) chunk(key, ep uint64, length int32) *ChunkRef {
	return f.store.Add(&Chunk{
		Key: key, EpisodeID: ep, Length: length,
		Columns: []ColumnSpec{{Name: "obs", DType: tensor.Float32, Shape: []int{3}}},
		Data:    []byte{byte(key), 1, 2, 3},
	})
}

// item builds an item over a fresh single-step chunk whose key equals the
// item key, so chunk and item counts match.
func (f *fixture) item(key uint64, priority float64) Item {
	r := f.chunk(key, key/10, 1)
	return Item{Key: key, Priority: priority, Chunks: []*ChunkRef{r},
		Trajectory: []TrajectoryColumn{{Slices: []ChunkSlice{{ChunkKey: key, Length: 1}}}}}
}

// insert inserts an item and drops the caller's chunk reference, as a server
// stream does once the item is in.
func (f *fixture) insert(tb *Table, key uint64, priority float64) {
	f.t.Helper()
	it := f.item(key, priority)
	defer releaseRefs(it.Chunks)
	if err := tb.Insert(context.Background(), it); err != nil {
		f.t.Fatalf("insert %d: %v", key, err)
	}
}

func newTable(t testing.TB, f *fixture, o Options) *Table {
	t.Helper()
	if o.Name == "" {
		o.Name = "t"
	}
	o.Chunks = f.store
	if o.Seed == 0 {
		o.Seed = 42
	}
	tb, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func keysOf(t *Table) map[uint64]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[uint64]bool{}
	t.mu.slab.each(func(rec *item) { out[rec.key] = true })
	return out
}

func TestOptionsValidate(t *testing.T) {
	bad := ratelimit.Config{SamplesPerInsert: -1, MinSizeToSample: 1}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no name", Options{}, "name is required"},
		{"max size", Options{Name: "a", MaxSize: -5}, "max_size: must be >= 1"},
		{"sampler", Options{Name: "a", Sampler: sampler.PrioritizedSpec(-1)}, "sampler:"},
		{"remover", Options{Name: "a", Remover: sampler.Spec{Kind: 99}}, "remover:"},
		{"limiter", Options{Name: "a", RateLimiter: bad}, "rate_limiter:"},
		{"signature", Options{Name: "a", Signature: &Signature{}}, "signature: signature has no columns"},
		{"signature dup", Options{Name: "a", Signature: &Signature{Columns: []ColumnSpec{{Name: "x", DType: tensor.Int8}, {Name: "x", DType: tensor.Int8}}}}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err = %v, want ErrInvalidOptions", err)
			}
			if !contains(err.Error(), tt.want) {
				t.Fatalf("err %q lacks %q", err, tt.want)
			}
		})
	}
	tb, err := New(Options{Name: "defaults"})
	if err != nil {
		t.Fatal(err)
	}
	o := tb.Options()
	if o.MaxSize != DefaultMaxSize || o.Sampler != sampler.UniformSpec() || o.Remover != sampler.FIFOSpec() || o.RateLimiter != ratelimit.Must(ratelimit.MinSize(1)) {
		t.Fatalf("defaults not applied: %+v", o)
	}
}

func TestEvictionByRemover(t *testing.T) {
	tests := []struct {
		remover sampler.Spec
		prios   []float64 // priorities of keys 1..4
		evicted uint64    // the key gone after inserting key 4 into a table of 3
	}{
		{sampler.FIFOSpec(), []float64{1, 1, 1, 1}, 1},
		{sampler.LIFOSpec(), []float64{1, 1, 1, 1}, 4}, // the new item itself
		{sampler.MinHeapSpec(), []float64{5, 0.5, 7, 3}, 2},
		{sampler.MaxHeapSpec(), []float64{5, 0.5, 7, 3}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.remover.String(), func(t *testing.T) {
			f := newFixture(t)
			tb := newTable(t, f, Options{MaxSize: 3, Remover: tt.remover})
			for i, p := range tt.prios {
				f.insert(tb, uint64(i+1), p)
			}
			keys := keysOf(tb)
			if len(keys) != 3 || keys[tt.evicted] {
				t.Fatalf("keys after overflow = %v, want 3 keys without %d", keys, tt.evicted)
			}
			if got := f.store.Len(); got != 3 {
				t.Fatalf("chunk store holds %d chunks, want 3", got)
			}
			if in := tb.Info(); in.Limiter.Deletes != 1 || in.Limiter.Inserts != 4 {
				t.Fatalf("limiter state %+v", in.Limiter)
			}
		})
	}
	t.Run("uniform", func(t *testing.T) {
		f := newFixture(t)
		tb := newTable(t, f, Options{MaxSize: 10, Remover: sampler.UniformSpec()})
		for k := uint64(1); k <= 100; k++ {
			f.insert(tb, k, 1)
		}
		if tb.Size() != 10 || f.store.Len() != 10 {
			t.Fatalf("size %d, chunks %d", tb.Size(), f.store.Len())
		}
	})
}

func TestMaxTimesSampled(t *testing.T) {
	f := newFixture(t)
	tb := newTable(t, f, Options{MaxTimesSampled: 3, Sampler: sampler.FIFOSpec()})
	f.insert(tb, 1, 1)
	f.insert(tb, 2, 1)
	ctx := context.Background()
	for i := int32(1); i <= 3; i++ {
		got, err := tb.Sample(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Info.Key != 1 || got[0].Info.TimesSampled != i || got[0].Info.TableSize != 2 {
			t.Fatalf("sample %d: %+v", i, got[0].Info)
		}
		if len(got[0].Chunks) != 1 || got[0].Chunks[0].Key != 1 {
			t.Fatalf("sample %d chunks: %+v", i, got[0].Chunks)
		}
	}
	// The third sample was returned, and then item 1 was deleted.
	if keys := keysOf(tb); len(keys) != 1 || !keys[2] {
		t.Fatalf("keys = %v, want only 2", keys)
	}
	got, err := tb.Sample(ctx, 1)
	if err != nil || got[0].Info.Key != 2 || got[0].Info.TableSize != 1 {
		t.Fatalf("next sample: %+v, %v", got, err)
	}
	if f.store.Len() != 1 {
		t.Fatalf("chunks = %d, want 1", f.store.Len())
	}
	in := tb.Info()
	if in.NumUniqueSamples != 2 || in.Limiter.Samples != 4 || in.Limiter.Deletes != 1 {
		t.Fatalf("info %+v", in)
	}
}

func TestInsertExistingKeyUpdatesPriorityOnly(t *testing.T) {
	f := newFixture(t)
	var now atomic.Int64
	now.Store(1000)
	tb := newTable(t, f, Options{Sampler: sampler.MaxHeapSpec(), Now: func() time.Time { return time.Unix(0, now.Add(1)) }})
	f.insert(tb, 1, 1)
	f.insert(tb, 2, 2)
	first := tb.Info()
	// A resend with new data and priority: only the priority changes.
	it := Item{Key: 1, Priority: 10, Chunks: []*ChunkRef{f.chunk(99, 9, 1)},
		Trajectory: []TrajectoryColumn{{Slices: []ChunkSlice{{ChunkKey: 99, Length: 1}}}}}
	if err := tb.Insert(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	releaseRefs(it.Chunks)
	if in := tb.Info(); in.Limiter != first.Limiter || in.Size != 2 || in.NumEpisodes != first.NumEpisodes {
		t.Fatalf("re-insert changed counters: %+v vs %+v", in, first)
	}
	got, err := tb.Sample(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	s := got[0]
	if s.Info.Key != 1 || s.Info.Priority != 10 || s.Chunks[0].Key != 1 || s.Info.InsertedAt.UnixNano() != 1001 {
		t.Fatalf("sample after re-insert: %+v chunk %d", s.Info, s.Chunks[0].Key)
	}
	if f.store.Len() != 2 {
		t.Fatalf("discarded chunk kept: %d chunks", f.store.Len())
	}
}

func TestBadItems(t *testing.T) {
	f := newFixture(t)
	sig := &Signature{Columns: []ColumnSpec{{Name: "obs", DType: tensor.Float32, Shape: []int{-1}}}}
	tb := newTable(t, f, Options{Sampler: sampler.PrioritizedSpec(1), Signature: sig})
	f.insert(tb, 1, 1)
	before := tb.Info()
	good := func() Item { return f.item(50, 1) }
	tests := []struct {
		name string
		edit func(*Item)
		want error
	}{
		{"NaN", func(it *Item) { it.Priority = math.NaN() }, ErrInvalidPriority},
		{"+Inf", func(it *Item) { it.Priority = math.Inf(1) }, ErrInvalidPriority},
		{"negative", func(it *Item) { it.Priority = -0.5 }, ErrInvalidPriority},
		{"empty trajectory", func(it *Item) { it.Trajectory = nil }, ErrInvalidItem},
		{"no chunks", func(it *Item) { it.Chunks = nil }, ErrInvalidItem},
		{"empty column", func(it *Item) { it.Trajectory[0].Slices = nil }, ErrInvalidItem},
		{"unknown chunk", func(it *Item) { it.Trajectory[0].Slices[0].ChunkKey = 777 }, ErrInvalidItem},
		{"slice past end", func(it *Item) { it.Trajectory[0].Slices[0].Offset = 1 }, ErrInvalidItem},
		{"zero length", func(it *Item) { it.Trajectory[0].Slices[0].Length = 0 }, ErrInvalidItem},
		{"column index", func(it *Item) { it.Trajectory[0].Slices[0].Index = 3 }, ErrInvalidItem},
		{"duplicate chunk", func(it *Item) { it.Chunks = append(it.Chunks, it.Chunks[0]) }, ErrInvalidItem},
		{"squeeze two steps", func(it *Item) {
			it.Trajectory[0].Squeeze = true
			it.Trajectory[0].Slices = append(it.Trajectory[0].Slices, it.Trajectory[0].Slices[0])
		}, ErrInvalidItem},
		{"signature columns", func(it *Item) { it.Trajectory = append(it.Trajectory, it.Trajectory[0]) }, ErrSignatureMismatch},
		{"signature dtype", func(it *Item) {
			c := *it.Chunks[0].chunk[0]
			c.Key, c.Columns = 51, []ColumnSpec{{DType: tensor.Int8, Shape: []int{3}}}
			it.Chunks = []*ChunkRef{f.store.Add(&c)}
			it.Trajectory[0].Slices[0].ChunkKey = 51
		}, ErrSignatureMismatch},
		{"signature rank", func(it *Item) {
			c := *it.Chunks[0].chunk[0]
			c.Key, c.Columns = 52, []ColumnSpec{{DType: tensor.Float32, Shape: []int{3, 1}}}
			it.Chunks = []*ChunkRef{f.store.Add(&c)}
			it.Trajectory[0].Slices[0].ChunkKey = 52
		}, ErrSignatureMismatch},
		{"signature undescribed chunk", func(it *Item) {
			c := *it.Chunks[0].chunk[0]
			c.Key, c.Columns = 53, nil
			it.Chunks = []*ChunkRef{f.store.Add(&c)}
			it.Trajectory[0].Slices[0].ChunkKey = 53
		}, ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := good()
			defer releaseRefs(it.Chunks)
			tt.edit(&it)
			err := tb.Insert(context.Background(), it)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if in := tb.Info(); in.Size != before.Size || in.Limiter != before.Limiter {
				t.Fatalf("table changed: %+v", in)
			}
		})
	}
	// Bad priority updates of an existing key are refused too.
	it := f.item(1, math.NaN())
	if err := tb.Insert(context.Background(), it); !errors.Is(err, ErrInvalidPriority) {
		t.Fatalf("update to NaN: %v", err)
	}
	releaseRefs(it.Chunks)
	if err := tb.MutatePriorities(context.Background(), map[uint64]float64{1: 2, 7: -1}, []uint64{1}); !errors.Is(err, ErrInvalidPriority) {
		t.Fatalf("mutate with -1: %v", err)
	}
	if tb.Size() != 1 {
		t.Fatal("failed mutate deleted an item")
	}
	if _, err := tb.Sample(context.Background(), 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("sample 0: %v", err)
	}
}

func TestMutatePriorities(t *testing.T) {
	f := newFixture(t)
	tb := newTable(t, f, Options{Sampler: sampler.MaxHeapSpec()})
	for k := uint64(1); k <= 4; k++ {
		f.insert(tb, k, float64(k))
	}
	// Deletes run first, so updating a deleted key is a no-op; unknown keys
	// are ignored.
	err := tb.MutatePriorities(context.Background(), map[uint64]float64{4: 100, 1: 50, 12345: 1}, []uint64{4, 999})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tb.Sample(context.Background(), 1)
	if got[0].Info.Key != 1 || got[0].Info.Priority != 50 {
		t.Fatalf("top after mutate: %+v", got[0].Info)
	}
	if tb.Size() != 3 || f.store.Len() != 3 {
		t.Fatalf("size %d chunks %d", tb.Size(), f.store.Len())
	}
}

func TestResetAndEpisodes(t *testing.T) {
	f := newFixture(t)
	tb := newTable(t, f, Options{MaxSize: 100})
	for k := uint64(0); k < 30; k++ { // episodes k/10: 0, 1, 2
		f.insert(tb, k, 1)
	}
	if in := tb.Info(); in.NumEpisodes != 3 || in.NumDeletedEpisodes != 0 {
		t.Fatalf("episodes %+v", in)
	}
	var del []uint64
	for k := uint64(0); k < 10; k++ {
		del = append(del, k)
	}
	if err := tb.MutatePriorities(context.Background(), nil, del[:9]); err != nil {
		t.Fatal(err)
	}
	if in := tb.Info(); in.NumEpisodes != 3 || in.NumDeletedEpisodes != 0 {
		t.Fatalf("episode 0 still has one item: %+v", in)
	}
	if err := tb.MutatePriorities(context.Background(), nil, del[9:]); err != nil {
		t.Fatal(err)
	}
	if in := tb.Info(); in.NumEpisodes != 2 || in.NumDeletedEpisodes != 1 {
		t.Fatalf("after deleting episode 0: %+v", in)
	}
	tb.Sample(context.Background(), 5)
	if err := tb.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	in := tb.Info()
	if in.Size != 0 || in.Limiter != (ratelimit.State{}) || in.NumEpisodes != 0 || in.NumDeletedEpisodes != 0 || in.NumUniqueSamples != 0 {
		t.Fatalf("after reset: %+v", in)
	}
	if f.store.Len() != 0 || f.store.Bytes() != 0 {
		t.Fatalf("chunks after reset: %d (%d bytes)", f.store.Len(), f.store.Bytes())
	}
}

func TestChunksSharedAcrossItemsAndTables(t *testing.T) {
	f := newFixture(t)
	a := newTable(t, f, Options{Name: "a"})
	b := newTable(t, f, Options{Name: "b"})
	// One 4-step chunk, two items in each table over different slices of it.
	ref := f.chunk(7, 1, 4)
	mk := func(key uint64, off int32) Item {
		return Item{Key: key, Priority: 1, Chunks: []*ChunkRef{ref},
			Trajectory: []TrajectoryColumn{{Slices: []ChunkSlice{{ChunkKey: 7, Offset: off, Length: 2}}}}}
	}
	ctx := context.Background()
	for _, tb := range []*Table{a, b} {
		for i, it := range []Item{mk(1, 0), mk(2, 2)} {
			if err := tb.Insert(ctx, it); err != nil {
				t.Fatalf("%s item %d: %v", tb.Name(), i, err)
			}
		}
	}
	if ref.refCount() != 5 {
		t.Fatalf("refs = %d, want 4 items + the caller", ref.refCount())
	}
	ref.Release()
	a.MutatePriorities(ctx, nil, []uint64{1, 2})
	if f.store.Len() != 1 {
		t.Fatal("chunk dropped while table b still uses it")
	}
	b.MutatePriorities(ctx, nil, []uint64{1})
	got, err := b.Sample(ctx, 1)
	if err != nil || got[0].Chunks[0] != ref.Chunk() || got[0].Trajectory[0].Slices[0].Offset != 2 {
		t.Fatalf("sample: %+v %v", got, err)
	}
	b.MutatePriorities(ctx, nil, []uint64{2})
	if f.store.Len() != 0 || ref.refCount() != 0 {
		t.Fatalf("chunk not dropped: store %d refs %d", f.store.Len(), ref.refCount())
	}
}

func TestLimiterVectorThroughTable(t *testing.T) {
	f := newFixture(t)
	tb := newTable(t, f, Options{RateLimiter: ratelimit.Must(ratelimit.SampleToInsertRatioRange(1.5, 2, -1, 3))})
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 20*time.Millisecond)
	}
	ctx, cancel := short()
	defer cancel()
	f.insert(tb, 1, 1)
	if _, err := tb.Sample(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sample after 1 insert: %v, want DeadlineExceeded", err)
	}
	f.insert(tb, 2, 1)
	got, err := tb.Sample(context.Background(), 1)
	if err != nil || got[0].Info.RateLimited {
		t.Fatalf("sample after 2 inserts: %+v %v", got, err)
	}
	// A 3rd insert (diff 4.5 - 1 = 3.5 > 3) blocks until one more sample.
	done := make(chan error, 1)
	go func() {
		it := f.item(3, 1)
		defer releaseRefs(it.Chunks)
		done <- tb.Insert(context.Background(), it)
	}()
	waitFor(t, func() bool { return tb.Info().InsertsWaiting == 1 })
	select {
	case err := <-done:
		t.Fatalf("3rd insert returned early: %v", err)
	default:
	}
	if _, err := tb.Sample(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("3rd insert: %v", err)
	}
	if in := tb.Info(); in.InsertWaits != 1 || in.SampleWaits != 1 {
		t.Fatalf("wait counters %+v", in)
	}
}

func TestQueueAndStack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  func(string, int64) (Options, error)
		order []uint64
	}{
		{"queue", QueueOptions, []uint64{1, 2, 3}},
		{"stack", StackOptions, []uint64{3, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			o, err := tc.opts("q", 3)
			if err != nil {
				t.Fatal(err)
			}
			tb := newTable(t, f, o)
			for k := uint64(1); k <= 3; k++ {
				f.insert(tb, k, 0)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			it := f.item(4, 0)
			if err := tb.Insert(ctx, it); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("insert into full queue: %v", err)
			}
			releaseRefs(it.Chunks)
			for _, want := range tc.order {
				got, err := tb.Sample(context.Background(), 1)
				if err != nil || got[0].Info.Key != want || got[0].Info.Probability != 1 {
					t.Fatalf("got %+v %v, want key %d", got, err, want)
				}
			}
			if tb.Size() != 0 || f.store.Len() != 0 {
				t.Fatalf("queue not drained: size %d chunks %d", tb.Size(), f.store.Len())
			}
			if tb.CanSample(1) {
				t.Fatal("empty queue can sample")
			}
		})
	}
}

func TestSampleUpToFlexibleBatch(t *testing.T) {
	f := newFixture(t)
	// Three samples allowed per insert in total (diff bounds [0, ...]).
	tb := newTable(t, f, Options{RateLimiter: ratelimit.Must(ratelimit.New(1, 1, 0, 100))})
	for k := uint64(1); k <= 3; k++ {
		f.insert(tb, k, 1)
	}
	got, err := tb.SampleUpTo(context.Background(), 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("SampleUpTo(10) = %d items, %v; want 3", len(got), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := tb.SampleUpTo(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exhausted: %v", err)
	}
	f.insert(tb, 4, 1)
	f.insert(tb, 5, 1)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if _, err := tb.Sample(ctx2, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sample(3) with 2 allowed: %v", err)
	}
	if got, err := tb.Sample(context.Background(), 2); err != nil || len(got) != 2 {
		t.Fatalf("Sample(2): %d %v", len(got), err)
	}
}

func TestWaitersReleasedByDeadlineCancelAndClose(t *testing.T) {
	f := newFixture(t)
	tb := newTable(t, f, Options{RateLimiter: ratelimit.Must(ratelimit.MinSize(5))})
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	go func() { _, err := tb.Sample(ctx, 1); errs <- err }()
	waitFor(t, func() bool { return tb.Info().SamplesWaiting == 1 })
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}

	for i := 0; i < 2; i++ {
		go func() { _, err := tb.Sample(context.Background(), 1); errs <- err }()
	}
	waitFor(t, func() bool { return tb.Info().SamplesWaiting == 2 })
	if r := tb.Info().SampleBlockedReason; !contains(r, "below min_size_to_sample 5") {
		t.Fatalf("reason %q", r)
	}
	tb.Close()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("close: %v", err)
		}
	}
	it := f.item(1, 1)
	if err := tb.Insert(context.Background(), it); !errors.Is(err, ErrClosed) {
		t.Fatalf("insert after close: %v", err)
	}
	releaseRefs(it.Chunks)
	if err := tb.Reset(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("reset after close: %v", err)
	}
	if err := tb.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}

func TestInsertWaiterReleasedByClose(t *testing.T) {
	f := newFixture(t)
	o, _ := QueueOptions("q", 1)
	tb := newTable(t, f, o)
	f.insert(tb, 1, 1)
	errs := make(chan error, 1)
	go func() {
		it := f.item(2, 1)
		defer releaseRefs(it.Chunks)
		errs <- tb.Insert(context.Background(), it)
	}()
	waitFor(t, func() bool { return tb.Info().InsertsWaiting == 1 })
	tb.Close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("insert waiter: %v", err)
	}
	if f.store.Len() != 0 {
		t.Fatalf("chunks after close: %d", f.store.Len())
	}
}

// TestStress runs inserters and samplers behind a SampleToInsertRatio
// limiter, then checks that the counters agree and nothing leaked.
func TestStress(t *testing.T) {
	before := runtime.NumGoroutine()
	f := newFixture(t)
	const (
		inserters  = 4
		samplers   = 4
		perInserts = 2000
		maxSize    = 500
	)
	tb, err := New(Options{Name: "stress", MaxSize: maxSize, Chunks: f.store, Seed: 7,
		Sampler: sampler.PrioritizedSpec(0.8), Remover: sampler.FIFOSpec(),
		RateLimiter: ratelimit.Must(ratelimit.SampleToInsertRatio(2, 10, 40))})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var sampled atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	for w := 0; w < inserters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perInserts; i++ {
				key := uint64(w*perInserts + i + 1)
				it := Item{Key: key, Priority: float64(i%7) + 0.5, Chunks: []*ChunkRef{f.chunk(key, uint64(w), 1)},
					Trajectory: []TrajectoryColumn{{Slices: []ChunkSlice{{ChunkKey: key, Length: 1}}}}}
				err := tb.Insert(ctx, it)
				releaseRefs(it.Chunks)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("insert: %v", err)
					}
					return
				}
			}
		}()
	}
	var swg sync.WaitGroup
	for w := 0; w < samplers; w++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			var buf []Sampled
			for {
				var err error
				buf, err = tb.SampleInto(ctx, buf[:0], 3, true)
				if err != nil {
					return
				}
				for _, s := range buf {
					if s.Info.Probability <= 0 || s.Info.Probability > 1 || len(s.Chunks) != 1 || s.Chunks[0].Key != s.Info.Key {
						t.Errorf("bad sample %+v", s.Info)
					}
				}
				sampled.Add(int64(len(buf)))
				if w == 0 && sampled.Load()%50 == 0 {
					tb.MutatePriorities(ctx, map[uint64]float64{buf[0].Info.Key: 3}, nil)
				}
			}
		}()
	}
	wg.Wait()
	// Let samplers drain what the limiter still allows, then stop them.
	waitFor(t, func() bool { return !tb.CanSample(1) })
	cancel()
	swg.Wait()

	in := tb.Info()
	if in.Limiter.Inserts != inserters*perInserts {
		t.Errorf("inserts = %d, want %d", in.Limiter.Inserts, inserters*perInserts)
	}
	if in.Limiter.Samples != sampled.Load() {
		t.Errorf("limiter samples %d != returned samples %d", in.Limiter.Samples, sampled.Load())
	}
	if in.Size != in.Limiter.Inserts-in.Limiter.Deletes || in.Size != maxSize {
		t.Errorf("size %d, inserts-deletes %d", in.Size, in.Limiter.Inserts-in.Limiter.Deletes)
	}
	if f.store.Len() != in.Size {
		t.Errorf("chunks %d != items %d", f.store.Len(), in.Size)
	}
	diff := float64(in.Limiter.Inserts)*2 - float64(in.Limiter.Samples)
	if lo := 2.0*10 - 40; diff < lo {
		t.Errorf("diff %v below min %v", diff, lo)
	}
	tb.Close()
	if f.store.Len() != 0 {
		t.Errorf("chunks after close: %d", f.store.Len())
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// refCount returns the current number of references to r's chunk.
func (r *ChunkRef) refCount() int64 { return r.refs.Load() }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func releaseRefs(refs []*ChunkRef) {
	for _, r := range refs {
		r.Release()
	}
}

// TestChunkStoreAddAll: chunks added together are counted and released one
// by one, like chunks added alone.
func TestChunkStoreAddAll(t *testing.T) {
	s := NewChunkStore()
	if refs := s.AddAll(nil); refs != nil || s.Len() != 0 {
		t.Fatalf("AddAll(nil) = %v, store %d", refs, s.Len())
	}
	cs := []*Chunk{{Key: 1, Length: 1, Data: make([]byte, 3)}, {Key: 2, Length: 1, Data: make([]byte, 5)}}
	refs := s.AddAll(cs)
	if len(refs) != 2 || s.Len() != 2 || s.Bytes() != 8 {
		t.Fatalf("after AddAll: %d refs, store %d chunks %d bytes", len(refs), s.Len(), s.Bytes())
	}
	for i, r := range refs {
		if r.Chunk() != cs[i] || r.Key() != cs[i].Key || r.refCount() != 1 {
			t.Fatalf("ref %d: chunk %v key %d refs %d", i, r.Chunk(), r.Key(), r.refCount())
		}
	}
	refs[0].Acquire()
	refs[0].Release()
	refs[1].Release()
	if s.Len() != 1 || s.Bytes() != 3 {
		t.Fatalf("after releasing chunk 2: store %d chunks %d bytes", s.Len(), s.Bytes())
	}
	refs[0].Release()
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("after releasing both: store %d chunks %d bytes", s.Len(), s.Bytes())
	}
}

func TestInsertBatch(t *testing.T) {
	ctx := context.Background()
	items := func(f *fixture, keys ...uint64) []Item {
		out := make([]Item, len(keys))
		for i, k := range keys {
			out[i] = f.item(k, float64(k))
		}
		return out
	}
	release := func(its []Item) {
		for _, it := range its {
			releaseRefs(it.Chunks)
		}
	}

	t.Run("all in, existing keys updated", func(t *testing.T) {
		f := newFixture(t)
		tb := newTable(t, f, Options{})
		f.insert(tb, 2, 1)
		its := items(f, 1, 2, 3)
		defer release(its)
		if n, err := tb.InsertBatch(ctx, its); n != 3 || err != nil {
			t.Fatalf("InsertBatch = %d, %v", n, err)
		}
		if info := tb.Info(); info.Size != 3 || info.Limiter.Inserts != 3 {
			t.Fatalf("size %d inserts %d, want 3 and 3", info.Size, info.Limiter.Inserts)
		}
		got, err := tb.SampleUpTo(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			if s.Info.Key == 2 && s.Info.Priority != 2 {
				t.Errorf("re-inserted key 2 has priority %v, want 2", s.Info.Priority)
			}
		}
	})

	t.Run("a malformed item inserts nothing", func(t *testing.T) {
		f := newFixture(t)
		tb := newTable(t, f, Options{})
		its := items(f, 1, 2, 3)
		defer release(its)
		its[2].Priority = math.NaN()
		if n, err := tb.InsertBatch(ctx, its); n != 0 || !errors.Is(err, ErrInvalidPriority) {
			t.Fatalf("InsertBatch = %d, %v; want 0, ErrInvalidPriority", n, err)
		}
		if tb.Size() != 0 {
			t.Fatalf("size %d after a rejected batch", tb.Size())
		}
	})

	t.Run("stops where the limiter times out", func(t *testing.T) {
		f := newFixture(t)
		tb := newTable(t, f, Options{RateLimiter: ratelimit.Must(ratelimit.Queue(2))})
		its := items(f, 1, 2, 3, 4)
		defer release(its)
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if n, err := tb.InsertBatch(short, its); n != 2 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("InsertBatch = %d, %v; want 2, DeadlineExceeded", n, err)
		}
		if tb.Size() != 2 {
			t.Fatalf("size %d, want 2", tb.Size())
		}
	})

	// A batch that must wait mid-way lets waiters see what it inserted
	// first: a sampler waiting for items takes them, which lets the batch
	// go on. Without that the two would wait for each other.
	t.Run("waits without starving waiters", func(t *testing.T) {
		f := newFixture(t)
		tb := newTable(t, f, Options{RateLimiter: ratelimit.Must(ratelimit.Queue(2))})
		its := items(f, 1, 2, 3, 4, 5, 6)
		defer release(its)
		sampled := make(chan error, 1)
		go func() {
			for range len(its) {
				if _, err := tb.Sample(ctx, 1); err != nil {
					sampled <- err
					return
				}
			}
			sampled <- nil
		}()
		deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if n, err := tb.InsertBatch(deadline, its); n != len(its) || err != nil {
			t.Fatalf("InsertBatch = %d, %v", n, err)
		}
		if err := <-sampled; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("closed table", func(t *testing.T) {
		f := newFixture(t)
		tb := newTable(t, f, Options{})
		its := items(f, 1)
		defer release(its)
		tb.Close()
		if n, err := tb.InsertBatch(ctx, its); n != 0 || !errors.Is(err, ErrClosed) {
			t.Fatalf("InsertBatch = %d, %v; want 0, ErrClosed", n, err)
		}
	})
}
