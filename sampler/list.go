package sampler

import "github.com/recall-rl/recall/internal/keyindex"

// nilNode marks the absence of a node in a list.
const nilNode = -1

// listNode is one key in a list. Free nodes are chained through next.
type listNode struct {
	key        uint64
	prev, next int32
}

// list is a doubly linked list of keys in insertion order, threaded through
// a slab of nodes, with an index from key to node. Deleted nodes go on a free list and are
// reused, so a steady state of inserts and deletes does not allocate nodes.
type list struct {
	nodes      []listNode
	pos        keyindex.Index
	head, tail int32 // oldest and newest key, or nilNode
	free       int32 // first free node, or nilNode
}

func newList(pos keyindex.Index) list {
	return list{pos: pos, head: nilNode, tail: nilNode, free: nilNode}
}

func (l *list) insert(key uint64, priority float64) error {
	if err := checkPriority(key, priority); err != nil {
		return err
	}
	i := l.free
	if i == nilNode {
		if len(l.nodes) >= maxKeys {
			return fullError(key)
		}
		i = int32(len(l.nodes))
	}
	if _, ok := l.pos.Insert(key, i); !ok {
		return existsError(key)
	}
	if i == l.free {
		l.free = l.nodes[i].next
	} else {
		l.nodes = append(l.nodes, listNode{})
	}
	l.nodes[i] = listNode{key: key, prev: l.tail, next: nilNode}
	if l.tail != nilNode {
		l.nodes[l.tail].next = i
	} else {
		l.head = i
	}
	l.tail = i
	return nil
}

func (l *list) update(key uint64, priority float64) error {
	if err := checkPriority(key, priority); err != nil {
		return err
	}
	if _, ok := l.pos.Get(key); !ok {
		return notFoundError(key)
	}
	return nil
}

func (l *list) delete(key uint64) error {
	i, ok := l.pos.Remove(key)
	if !ok {
		return notFoundError(key)
	}
	n := &l.nodes[i]
	if n.prev != nilNode {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nilNode {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	*n = listNode{prev: nilNode, next: l.free}
	l.free = i
	return nil
}

// sample returns the key of node i with probability 1.
func (l *list) sample(i int32) (Sample, error) {
	if i == nilNode {
		return Sample{}, ErrEmpty
	}
	return Sample{Key: l.nodes[i].key, Probability: 1}, nil
}

func (l *list) len() int { return l.pos.Len() }

func (l *list) clear() {
	l.nodes = l.nodes[:0]
	l.pos.Clear()
	l.head, l.tail, l.free = nilNode, nilNode, nilNode
}

// FIFO always samples the oldest key: the one inserted first among those
// present. Updates change nothing (a key keeps its place), and priorities are
// validated but otherwise ignored. The probability reported is 1.
//
// Keys form a doubly linked list over a slab of nodes, with an index from
// key to node, so Insert, Update, Delete (of any key) and Sample are O(1).
type FIFO struct{ l list }

var _ Selector = (*FIFO)(nil)

// NewFIFO returns an empty FIFO selector.
func NewFIFO() *FIFO { return &FIFO{l: newList(keyindex.New())} }

// Insert adds key as the newest key. The priority is checked but not used.
func (s *FIFO) Insert(key uint64, priority float64) error { return s.l.insert(key, priority) }

// Update checks that key is present and priority valid; the key keeps its
// place.
func (s *FIFO) Update(key uint64, priority float64) error { return s.l.update(key, priority) }

// Delete removes key, wherever it is in the order.
func (s *FIFO) Delete(key uint64) error { return s.l.delete(key) }

// Sample returns the oldest key, with probability 1.
func (s *FIFO) Sample() (Sample, error) { return s.l.sample(s.l.head) }

// Len returns the number of keys.
func (s *FIFO) Len() int { return s.l.len() }

// Clear removes every key.
func (s *FIFO) Clear() { s.l.clear() }

// Spec returns FIFOSpec().
func (s *FIFO) Spec() Spec { return FIFOSpec() }

// LIFO always samples the newest key: the one inserted last among those
// present. Updates change nothing (a key keeps its place), and priorities are
// validated but otherwise ignored. The probability reported is 1.
//
// Keys form a doubly linked list over a slab of nodes, with an index from
// key to node, so Insert, Update, Delete (of any key) and Sample are O(1).
type LIFO struct{ l list }

var _ Selector = (*LIFO)(nil)

// NewLIFO returns an empty LIFO selector.
func NewLIFO() *LIFO { return &LIFO{l: newList(keyindex.New())} }

// Insert adds key as the newest key. The priority is checked but not used.
func (s *LIFO) Insert(key uint64, priority float64) error { return s.l.insert(key, priority) }

// Update checks that key is present and priority valid; the key keeps its
// place.
func (s *LIFO) Update(key uint64, priority float64) error { return s.l.update(key, priority) }

// Delete removes key, wherever it is in the order.
func (s *LIFO) Delete(key uint64) error { return s.l.delete(key) }

// Sample returns the newest key, with probability 1.
func (s *LIFO) Sample() (Sample, error) { return s.l.sample(s.l.tail) }

// Len returns the number of keys.
func (s *LIFO) Len() int { return s.l.len() }

// Clear removes every key.
func (s *LIFO) Clear() { s.l.clear() }

// Spec returns LIFOSpec().
func (s *LIFO) Spec() Spec { return LIFOSpec() }
