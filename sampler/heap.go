package sampler

import "github.com/recall-rl/recall/internal/keyindex"

// heapArity is the number of children of a heap node. A 4-ary heap is half
// as deep as a binary one, and a node's children are adjacent in memory.
const heapArity = 4

// heapEntry is one key in the heap array.
type heapEntry struct {
	// prio orders the heap: the priority for a min-heap, its negation for a
	// max-heap, so the root always has the smallest prio.
	prio float64
	// seq is the value of a counter bumped by every insert and update; among
	// equal prio the smallest seq (least recently inserted or updated) wins.
	seq uint64
	key uint64
}

// heap is an indexed 4-ary heap of keys: an index maps each key to its
// position in the heap array and is kept up to date as entries move, so the
// entry of any key is found in O(1) and moved in O(log n).
type heap struct {
	negate  bool // max-heap
	entries []heapEntry
	pos     keyindex.Index
	seq     uint64
}

func newHeap(maxHeap bool, pos keyindex.Index) heap {
	return heap{negate: maxHeap, pos: pos}
}

func (h *heap) order(priority float64) float64 {
	if h.negate {
		return -priority
	}
	return priority
}

func less(a, b *heapEntry) bool {
	return a.prio < b.prio || (a.prio == b.prio && a.seq < b.seq)
}

func (h *heap) insert(key uint64, priority float64) error {
	if err := checkPriority(key, priority); err != nil {
		return err
	}
	n := len(h.entries)
	if n >= maxKeys {
		return fullError(key)
	}
	if _, ok := h.pos.Insert(key, int32(n)); !ok {
		return existsError(key)
	}
	h.seq++
	h.entries = append(h.entries, heapEntry{prio: h.order(priority), seq: h.seq, key: key})
	h.siftUp(n)
	return nil
}

func (h *heap) update(key uint64, priority float64) error {
	if err := checkPriority(key, priority); err != nil {
		return err
	}
	i, ok := h.pos.Get(key)
	if !ok {
		return notFoundError(key)
	}
	h.seq++
	h.entries[i].prio = h.order(priority)
	h.entries[i].seq = h.seq
	h.fix(int(i))
	return nil
}

func (h *heap) delete(key uint64) error {
	i, ok := h.pos.Remove(key)
	if !ok {
		return notFoundError(key)
	}
	last := len(h.entries) - 1
	if int(i) != last {
		h.entries[i] = h.entries[last]
		h.entries = h.entries[:last]
		h.pos.Set(h.entries[i].key, i)
		h.fix(int(i))
	} else {
		h.entries = h.entries[:last]
	}
	return nil
}

func (h *heap) sample() (Sample, error) {
	if len(h.entries) == 0 {
		return Sample{}, ErrEmpty
	}
	return Sample{Key: h.entries[0].key, Probability: 1}, nil
}

func (h *heap) len() int { return len(h.entries) }

func (h *heap) clear() {
	h.entries = h.entries[:0]
	h.pos.Clear()
}

// fix restores the heap order after the entry at i changed, keeping the
// index up to date.
func (h *heap) fix(i int) {
	if !h.siftUp(i) {
		h.siftDown(i)
	}
}

// siftUp moves the entry at i towards the root while it beats its parent,
// and reports whether it moved. The index is updated for every entry moved.
func (h *heap) siftUp(i int) bool {
	es := h.entries
	e := es[i]
	start := i
	for i > 0 {
		parent := (i - 1) / heapArity
		if !less(&e, &es[parent]) {
			break
		}
		es[i] = es[parent]
		h.pos.Set(es[i].key, int32(i))
		i = parent
	}
	if i == start {
		return false
	}
	es[i] = e
	h.pos.Set(e.key, int32(i))
	return true
}

// siftDown moves the entry at i away from the root while a child beats it.
// The index is updated for every entry moved.
func (h *heap) siftDown(i int) {
	es := h.entries
	n := len(es)
	e := es[i]
	start := i
	for {
		first := heapArity*i + 1
		if first >= n {
			break
		}
		best := first
		for c := first + 1; c < min(first+heapArity, n); c++ {
			if less(&es[c], &es[best]) {
				best = c
			}
		}
		if !less(&es[best], &e) {
			break
		}
		es[i] = es[best]
		h.pos.Set(es[i].key, int32(i))
		i = best
	}
	if i != start {
		es[i] = e
		h.pos.Set(e.key, int32(i))
	}
}

// MinHeap always samples the key with the lowest priority. Among keys with
// equal priority it samples the least recently inserted or updated one. The
// probability reported is 1.
//
// It is an indexed 4-ary heap: Sample is O(1); Insert, Update and Delete are
// O(log N).
type MinHeap struct{ h heap }

var _ Selector = (*MinHeap)(nil)

// NewMinHeap returns an empty MinHeap selector.
func NewMinHeap() *MinHeap { return &MinHeap{h: newHeap(false, keyindex.New())} }

// Insert adds key with the given priority.
func (s *MinHeap) Insert(key uint64, priority float64) error { return s.h.insert(key, priority) }

// Update changes the priority of key and makes it the most recently updated
// key for tie-breaking, even if the priority is unchanged.
func (s *MinHeap) Update(key uint64, priority float64) error { return s.h.update(key, priority) }

// Delete removes key.
func (s *MinHeap) Delete(key uint64) error { return s.h.delete(key) }

// Sample returns the key with the lowest priority, with probability 1.
func (s *MinHeap) Sample() (Sample, error) { return s.h.sample() }

// Len returns the number of keys.
func (s *MinHeap) Len() int { return s.h.len() }

// Clear removes every key.
func (s *MinHeap) Clear() { s.h.clear() }

// Spec returns MinHeapSpec().
func (s *MinHeap) Spec() Spec { return MinHeapSpec() }

// MaxHeap always samples the key with the highest priority. Among keys with
// equal priority it samples the least recently inserted or updated one. The
// probability reported is 1.
//
// It is an indexed 4-ary heap: Sample is O(1); Insert, Update and Delete are
// O(log N).
type MaxHeap struct{ h heap }

var _ Selector = (*MaxHeap)(nil)

// NewMaxHeap returns an empty MaxHeap selector.
func NewMaxHeap() *MaxHeap { return &MaxHeap{h: newHeap(true, keyindex.New())} }

// Insert adds key with the given priority.
func (s *MaxHeap) Insert(key uint64, priority float64) error { return s.h.insert(key, priority) }

// Update changes the priority of key and makes it the most recently updated
// key for tie-breaking, even if the priority is unchanged.
func (s *MaxHeap) Update(key uint64, priority float64) error { return s.h.update(key, priority) }

// Delete removes key.
func (s *MaxHeap) Delete(key uint64) error { return s.h.delete(key) }

// Sample returns the key with the highest priority, with probability 1.
func (s *MaxHeap) Sample() (Sample, error) { return s.h.sample() }

// Len returns the number of keys.
func (s *MaxHeap) Len() int { return s.h.len() }

// Clear removes every key.
func (s *MaxHeap) Clear() { s.h.clear() }

// Spec returns MaxHeapSpec().
func (s *MaxHeap) Spec() Spec { return MaxHeapSpec() }
