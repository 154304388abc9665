package table

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/recall-rl/recall/ratelimit"
)

// Snapshot is a consistent copy of a table's state at one instant: its
// options, its items in insertion order and its counters. Items share their
// trajectories and chunks with the table (both are immutable), so taking a
// snapshot copies only item metadata; chunk data stays valid after the
// table drops the items.
type Snapshot struct {
	Options            Options
	Items              []SnapshotItem
	Limiter            ratelimit.State
	NumDeletedEpisodes int64
	NumUniqueSamples   int64
}

// SnapshotItem is one item of a Snapshot.
type SnapshotItem struct {
	Key          uint64
	Priority     float64
	TimesSampled int32
	InsertedAt   time.Time
	Trajectory   []TrajectoryColumn
	Chunks       []*Chunk
}

// ErrNotEmpty is returned by Restore on a table that holds items.
var ErrNotEmpty = errors.New("table: restore into a table that is not empty")

// Snapshot copies the table's state. The table lock is held only while item
// metadata is copied.
func (t *Table) Snapshot() (*Snapshot, error) {
	snaps, err := SnapshotAll(t)
	if err != nil {
		return nil, err
	}
	return snaps[0], nil
}

// SnapshotAll snapshots several tables at one instant: it holds every
// table's lock (taken in name order, so concurrent calls cannot deadlock)
// while it copies their item metadata, so no insert, sample or eviction
// lands between two of the snapshots. The snapshots are returned in the
// order of the arguments; a table passed twice is snapshotted twice.
func SnapshotAll(tables ...*Table) ([]*Snapshot, error) {
	order := make([]*Table, 0, len(tables)) // each table once: it is locked once
	for _, t := range tables {
		if !slices.Contains(order, t) {
			order = append(order, t)
		}
	}
	slices.SortFunc(order, func(a, b *Table) int { return cmp.Compare(a.opts.Name, b.opts.Name) })
	for i, t := range order {
		t.mu.Lock()
		if t.mu.closed {
			for _, u := range order[:i+1] {
				u.mu.Unlock()
			}
			return nil, fmt.Errorf("%w: %q", ErrClosed, t.opts.Name)
		}
	}
	snaps := make([]*Snapshot, len(tables))
	seqs := make([][]uint64, len(tables))
	for i, t := range tables {
		snaps[i], seqs[i] = t.captureLocked()
	}
	for _, t := range order {
		t.mu.Unlock()
	}
	for i, s := range snaps {
		s.sortBySeq(seqs[i])
	}
	return snaps, nil
}

// captureLocked copies the table's state and the items' insertion sequence
// numbers. t.mu must be held.
func (t *Table) captureLocked() (*Snapshot, []uint64) {
	s := &Snapshot{
		Options:            t.Options(),
		Items:              make([]SnapshotItem, 0, t.mu.items.Len()),
		Limiter:            t.mu.limiter.State(),
		NumDeletedEpisodes: t.mu.numDeletedEpisodes,
		NumUniqueSamples:   t.mu.numUniqueSamples,
	}
	seqs := make([]uint64, 0, t.mu.items.Len())
	t.mu.slab.each(func(rec *item) {
		s.Items = append(s.Items, SnapshotItem{
			Key:          rec.key,
			Priority:     rec.priority,
			TimesSampled: rec.timesSampled,
			InsertedAt:   time.Unix(0, rec.insertedAt),
			Trajectory:   rec.trajectory,
			Chunks:       rec.chunks,
		})
		seqs = append(seqs, rec.seq)
	})
	s.Options.Chunks, s.Options.Now = nil, nil
	return s, seqs
}

// sortBySeq puts the items in insertion order (FIFO/LIFO selectors and heap
// ties depend on it); seqs[i] is the sequence number of s.Items[i].
func (s *Snapshot) sortBySeq(seqs []uint64) {
	idx := make([]int, len(seqs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(seqs[a], seqs[b]) })
	sorted := make([]SnapshotItem, len(idx))
	for i, j := range idx {
		sorted[i] = s.Items[j]
	}
	s.Items = sorted
}

// Restore loads a snapshot's items and counters into an empty table,
// bypassing the rate limiter, in the snapshot's insertion order. Chunks are
// added to the table's chunk store, once per *Chunk however many items
// share it. The limiter counters are restored as they were, so a limiter
// that blocked before the snapshot blocks after it; Info says why.
func (t *Table) Restore(s *Snapshot) error {
	// Chunks shared by several items are added to the store once; the
	// store's first reference is dropped at the end (items hold their own).
	added := make(map[*Chunk]*ChunkRef)
	defer func() {
		for _, r := range added {
			r.Release()
		}
	}()
	var refs []*ChunkRef // reused: insertLocked keeps its own chunk list
	toItem := func(it *SnapshotItem) Item {
		refs = refs[:0]
		for _, c := range it.Chunks {
			r, ok := added[c]
			if !ok {
				// A shallow copy (the payload is shared): the snapshot's
				// chunk may still belong to another table's store.
				cc := *c
				cc.ref = nil
				r = t.opts.Chunks.Add(&cc)
				added[c] = r
			}
			refs = append(refs, r)
		}
		return Item{Key: it.Key, Priority: it.Priority, Trajectory: it.Trajectory, Chunks: refs}
	}
	// Check every item before changing the table.
	for i := range s.Items {
		it := &s.Items[i]
		tmp := toItem(it)
		if err := validateItem(&tmp, t.opts.Signature); err != nil {
			return fmt.Errorf("table %q: restore item %d: %w", t.opts.Name, i, err)
		}
		if it.TimesSampled < 0 {
			return fmt.Errorf("%w: table %q: restore item %d has times sampled %d", ErrInvalidItem, t.opts.Name, it.Key, it.TimesSampled)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return fmt.Errorf("%w: %q", ErrClosed, t.opts.Name)
	}
	if t.mu.items.Len() > 0 {
		return fmt.Errorf("%w: %q holds %d items", ErrNotEmpty, t.opts.Name, t.mu.items.Len())
	}
	for i := range s.Items {
		it := &s.Items[i]
		if _, dup := t.mu.items.Get(it.Key); dup {
			released := t.clearLocked()
			defer releaseAll(released)
			return fmt.Errorf("%w: table %q: snapshot lists key %d twice", ErrInvalidItem, t.opts.Name, it.Key)
		}
		tmp := toItem(it)
		if err := t.insertLocked(&tmp); err != nil {
			released := t.clearLocked()
			defer releaseAll(released)
			return err
		}
		rec, _ := t.itemLocked(it.Key)
		rec.timesSampled = it.TimesSampled
		rec.insertedAt = it.InsertedAt.UnixNano()
	}
	t.mu.limiter.Restore(s.Limiter)
	t.mu.numDeletedEpisodes = s.NumDeletedEpisodes
	t.mu.numUniqueSamples = s.NumUniqueSamples
	t.notifyLocked()
	return nil
}
