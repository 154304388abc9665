package table

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
)

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := newFixture(t)
	lim := ratelimit.Must(ratelimit.SampleToInsertRatio(2, 3, 30))
	tb := newTable(t, f, Options{Name: "src", Sampler: sampler.FIFOSpec(), Remover: sampler.MinHeapSpec(), MaxSize: 50, RateLimiter: lim})
	ctx := context.Background()
	for k := uint64(1); k <= 8; k++ {
		f.insert(tb, k*10, float64(k))
	}
	if _, err := tb.Sample(ctx, 5); err != nil {
		t.Fatal(err)
	}
	tb.MutatePriorities(ctx, nil, []uint64{30})
	snap, err := tb.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Items) != 7 || snap.Items[0].Key != 10 || snap.Items[0].TimesSampled != 5 {
		t.Fatalf("snapshot items %+v", snap.Items[:1])
	}
	// Changing the source after the snapshot does not change the snapshot.
	tb.Reset(ctx)

	g := newFixture(t)
	opts := snap.Options
	opts.Name = "dst"
	dst := newTable(t, g, opts)
	if err := dst.Restore(snap); err != nil {
		t.Fatal(err)
	}
	in := dst.Info()
	if in.Size != 7 || in.Limiter != snap.Limiter || in.NumUniqueSamples != 1 || in.NumDeletedEpisodes != snap.NumDeletedEpisodes {
		t.Fatalf("restored info %+v (snapshot limiter %+v)", in, snap.Limiter)
	}
	if in.RateLimiter != lim || in.Sampler != sampler.FIFOSpec() || in.Remover != sampler.MinHeapSpec() || in.MaxSize != 50 {
		t.Fatalf("restored options %+v", in)
	}
	if g.store.Len() != 7 {
		t.Fatalf("chunks restored: %d", g.store.Len())
	}
	// diff = 8*2 - 5 = 11, min_diff = 2*3-30 = -24: 35 more samples are
	// allowed, then sampling blocks, as it would have on the source.
	got, err := dst.Sample(ctx, 35)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Info.Key != 10 || got[0].Info.TimesSampled != 6 || !got[0].Info.InsertedAt.Equal(snap.Items[0].InsertedAt) {
		t.Fatalf("first restored sample %+v", got[0].Info)
	}
	if r := dst.Info().SampleBlockedReason; !strings.Contains(r, "below min_diff -24") {
		t.Fatalf("blocked reason after restore: %q", r)
	}
	if err := dst.Restore(snap); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into non-empty table: %v", err)
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	f := newFixture(t)
	src := newTable(t, f, Options{Name: "src"})
	for k := uint64(1); k <= 3; k++ {
		f.insert(src, k, 1)
	}
	good, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(s *Snapshot)
		want error
	}{
		{"bad priority", func(s *Snapshot) { s.Items[2].Priority = -1 }, ErrInvalidPriority},
		{"negative times sampled", func(s *Snapshot) { s.Items[1].TimesSampled = -1 }, ErrInvalidItem},
		{"slice past its chunk", func(s *Snapshot) {
			s.Items[2].Trajectory = []TrajectoryColumn{{Slices: []ChunkSlice{{ChunkKey: 3, Offset: 1, Length: 1}}}}
		}, ErrInvalidItem},
		{"key twice", func(s *Snapshot) { s.Items[2].Key = s.Items[0].Key }, ErrInvalidItem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := *good
			s.Items = slices.Clone(good.Items)
			tt.edit(&s)
			g := newFixture(t)
			dst := newTable(t, g, Options{Name: "dst"})
			if err := dst.Restore(&s); !errors.Is(err, tt.want) {
				t.Fatalf("Restore = %v, want %v", err, tt.want)
			}
			if dst.Size() != 0 || g.store.Len() != 0 || g.store.Bytes() != 0 {
				t.Fatalf("failed restore left %d items, %d chunks (%d bytes)", dst.Size(), g.store.Len(), g.store.Bytes())
			}
			if err := dst.Restore(good); err != nil || dst.Size() != 3 || g.store.Len() != 3 {
				t.Fatalf("restore after a failed one: %v, %d items, %d chunks", err, dst.Size(), g.store.Len())
			}
		})
	}
}

func TestSnapshotAllIsOneInstant(t *testing.T) {
	// A writer inserts keys 1, 2, ... into b and then a; both tables evict
	// FIFO beyond maxSize. So at any one instant a table whose newest key
	// is hi holds exactly the keys max(1, hi-maxSize+1)..hi, in that
	// insertion order, and b's newest key is a's or the one after it. (Any
	// check that ignored eviction would be wrong: once the tables are full,
	// b has already evicted the key that a evicts on its next insert.)
	const maxSize, numKeys = 500, 5_000
	f := newFixture(t)
	a := newTable(t, f, Options{Name: "a", MaxSize: maxSize})
	b := newTable(t, f, Options{Name: "b", MaxSize: maxSize})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := uint64(1); ctx.Err() == nil && k <= numKeys; k++ {
			for _, tb := range []*Table{b, a} {
				it := f.item(k, 1)
				err := tb.Insert(ctx, it)
				releaseRefs(it.Chunks)
				if err != nil {
					return
				}
			}
		}
	}()
	// check returns the newest key of a snapshot after checking that it
	// holds the keys described above.
	check := func(i int, name string, s *Snapshot) uint64 {
		t.Helper()
		if len(s.Items) == 0 {
			return 0
		}
		hi := s.Items[len(s.Items)-1].Key
		lo := uint64(1)
		if hi > maxSize {
			lo = hi - maxSize + 1
		}
		if uint64(len(s.Items)) != hi-lo+1 {
			cancel()
			t.Fatalf("snapshot %d: %s holds %d items, newest %d: want keys %d..%d", i, name, len(s.Items), hi, lo, hi)
		}
		for j, it := range s.Items {
			if it.Key != lo+uint64(j) {
				cancel()
				t.Fatalf("snapshot %d: %s item %d is key %d, want %d (keys %d..%d in insertion order)", i, name, j, it.Key, lo+uint64(j), lo, hi)
			}
		}
		return hi
	}
	// Snapshot until the writer is done, and once more after: every
	// snapshot overlaps the writes, however the goroutines are scheduled.
	for i, last := 0, false; !last; i++ {
		select {
		case <-done:
			last = true
		default:
		}
		snaps, err := SnapshotAll(a, b) // deliberately not in name order
		if err != nil {
			t.Fatal(err)
		}
		hiA, hiB := check(i, "a", snaps[0]), check(i, "b", snaps[1])
		if hiB != hiA && hiB != hiA+1 {
			cancel()
			t.Fatalf("snapshot %d: newest key %d in a but %d in b: the snapshots are not of one instant", i, hiA, hiB)
		}
		if last && (hiA != numKeys || hiB != numKeys) {
			t.Fatalf("after the writer: newest keys %d in a, %d in b, want %d", hiA, hiB, numKeys)
		}
	}
	b.Close()
	if _, err := SnapshotAll(a, b); !errors.Is(err, ErrClosed) {
		t.Fatalf("snapshot of a closed table: %v", err)
	}
	// The failed snapshot released the lock it had taken on a (nothing else
	// holds it: the writer is done).
	if !a.mu.TryLock() {
		t.Fatal("table a stayed locked after a failed SnapshotAll")
	}
	a.mu.Unlock()
}

// TestSnapshotAllSameTableTwice: a table passed twice is locked once (not a
// self-deadlock) and snapshotted twice.
func TestSnapshotAllSameTableTwice(t *testing.T) {
	f := newFixture(t)
	tb := newTable(t, f, Options{})
	f.insert(tb, 1, 1)
	done := make(chan struct{})
	var snaps []*Snapshot
	var err error
	go func() {
		defer close(done)
		snaps, err = SnapshotAll(tb, tb)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SnapshotAll(t, t) deadlocked")
	}
	if err != nil || len(snaps) != 2 || len(snaps[0].Items) != 1 || len(snaps[1].Items) != 1 {
		t.Fatalf("SnapshotAll(t, t) = %v, %v", snaps, err)
	}
}
