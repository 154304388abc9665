// Package sumtree implements a sum tree: a dense array of leaves, each a
// non-negative weight with a uint64 value attached, that supports O(log n)
// weight updates and O(log n) weighted sampling (finding the leaf whose
// interval of cumulative weight contains a number).
//
// # Layout
//
// The tree is [Fanout]-ary and array based, laid out so that a lookup in a
// large tree costs about one cache miss:
//
//   - Leaves are stored in groups of Fanout consecutive records, each record
//     holding the leaf's weight, its value and the running (prefix) sum of
//     the weights in its group up to and including it. Choosing a leaf in a
//     group reads one contiguous block that also holds the chosen leaf's
//     weight and value, so the memory system fetches all of it at once.
//   - Above the leaves, every internal node stores the prefix sums of its
//     Fanout children's totals in Fanout contiguous float64s (two cache
//     lines), followed by copies of the totals themselves, from which an
//     update recomputes the prefix sums without visiting the children. The
//     levels above the leaves are Fanout times smaller than the leaf array
//     and mostly stay in cache even for millions of leaves.
//
// Descending a node takes Fanout independent comparisons and no branches on
// the data, rather than a chain of additions.
//
// # Exactness
//
// Sums are never adjusted by a delta. When a weight changes, the prefix sums
// of its group and of each ancestor are recomputed from their children, left
// to right, starting at the changed child. The prefix sums before that child
// are unchanged, so every node always holds exactly what a full rebuild would
// compute: floating-point error does not accumulate however many updates are
// made. [Tree.Rebuild] exists to verify this, not to repair drift.
//
// # Concurrency
//
// A Tree is not safe for concurrent use.
package sumtree

import (
	"fmt"
	"math"
)

// Fanout is the number of children of every node, and the number of leaves
// in a leaf group.
const Fanout = 16

// leaf is one leaf record. prefix is the sum of the weights of the leaves
// before it in its group plus its own.
type leaf struct {
	prefix float64
	weight float64
	value  uint64
}

// node is an internal node. total[j] is a copy of child j's total (the last
// prefix sum of the child node or leaf group); prefix[j] is the sum of
// total[:j+1]. Sampling reads only prefix; updates recompute prefix from the
// contiguous totals instead of visiting every child.
type node struct {
	prefix [Fanout]float64
	total  [Fanout]float64
}

// Tree is a sum tree over leaves indexed 0..Len()-1.
// The zero value is an empty tree ready to use.
type Tree struct {
	n      int      // number of leaves in use
	leaves []leaf   // len is the capacity, a multiple of Fanout; leaves[n:] are zero
	levels [][]node // levels[0] is the parents of the leaf groups; the last level is the root
}

// New returns an empty tree with room for capacity leaves before it grows.
func New(capacity int) *Tree {
	t := &Tree{}
	t.alloc(capacity)
	return t
}

// alloc sizes the tree for at least capacity leaves, all zero.
func (t *Tree) alloc(capacity int) {
	capacity = max(Fanout, (capacity+Fanout-1)/Fanout*Fanout)
	t.leaves = make([]leaf, capacity)
	t.levels = nil
	for nodes := capacity / Fanout; nodes > 1; {
		nodes = (nodes + Fanout - 1) / Fanout
		t.levels = append(t.levels, make([]node, nodes))
	}
}

// Len returns the number of leaves.
func (t *Tree) Len() int { return t.n }

// Cap returns the number of leaves the tree can hold before it grows.
func (t *Tree) Cap() int { return len(t.leaves) }

// Total returns the sum of all weights.
func (t *Tree) Total() float64 {
	if len(t.levels) > 0 {
		return t.levels[len(t.levels)-1][0].prefix[Fanout-1]
	}
	if len(t.leaves) > 0 {
		return t.leaves[Fanout-1].prefix
	}
	return 0
}

// Weight returns the weight of leaf i. It panics if i is out of range.
func (t *Tree) Weight(i int) float64 {
	t.checkIndex(i)
	return t.leaves[i].weight
}

// Value returns the value of leaf i. It panics if i is out of range.
func (t *Tree) Value(i int) uint64 {
	t.checkIndex(i)
	return t.leaves[i].value
}

// Leaf returns the weight and value of leaf i. It panics if i is out of range.
func (t *Tree) Leaf(i int) (weight float64, value uint64) {
	t.checkIndex(i)
	l := &t.leaves[i]
	return l.weight, l.value
}

// Push appends a leaf at index Len(), growing the tree if needed. It panics
// unless weight is finite and >= 0.
func (t *Tree) Push(weight float64, value uint64) {
	checkWeight(weight)
	if t.n == len(t.leaves) {
		t.grow()
	}
	t.n++
	t.leaves[t.n-1].value = value
	t.set(t.n-1, weight)
}

// Pop removes the last leaf and returns its weight and value. It panics on an
// empty tree. The capacity is kept.
func (t *Tree) Pop() (weight float64, value uint64) {
	if t.n == 0 {
		panic("sumtree: Pop on empty tree")
	}
	l := t.leaves[t.n-1]
	t.set(t.n-1, 0)
	t.leaves[t.n-1].value = 0
	t.n--
	return l.weight, l.value
}

// Delete removes leaf i by moving the last leaf into its place, like a
// swap-remove on a slice. It returns the value of the leaf that moved to i,
// and false if i was the last leaf (nothing moved). It panics if i is out of
// range.
func (t *Tree) Delete(i int) (moved uint64, ok bool) {
	t.checkIndex(i)
	last := t.n - 1
	if i != last {
		l := &t.leaves[last]
		t.leaves[i].weight, t.leaves[i].value = l.weight, l.value
		moved, ok = l.value, true
	}
	t.leaves[last].weight, t.leaves[last].value = 0, 0
	t.n--
	t.refresh(i, last)
	return moved, ok
}

// Set changes the weight of leaf i. It panics if i is out of range or weight
// is not finite and >= 0.
func (t *Tree) Set(i int, weight float64) {
	t.checkIndex(i)
	checkWeight(weight)
	t.set(i, weight)
}

// SetLeaf changes both the weight and the value of leaf i. It panics if i is
// out of range or weight is not finite and >= 0.
func (t *Tree) SetLeaf(i int, weight float64, value uint64) {
	t.checkIndex(i)
	checkWeight(weight)
	t.leaves[i].value = value
	t.set(i, weight)
}

// Reset removes every leaf, keeping the allocated capacity.
func (t *Tree) Reset() {
	clear(t.leaves[:(t.n+Fanout-1)/Fanout*Fanout])
	for _, lvl := range t.levels {
		clear(lvl)
	}
	t.n = 0
}

// Rebuild recomputes every prefix sum from the leaf weights. The result is
// bit for bit what incremental updates maintain, so Rebuild is only useful to
// verify that invariant.
func (t *Tree) Rebuild() {
	for g := 0; g < len(t.leaves); g += Fanout {
		t.recomputeGroup(g, 0)
	}
	for l, lvl := range t.levels {
		for i := range lvl {
			nd := &lvl[i]
			for j := range Fanout {
				nd.total[j] = t.childTotal(l, i*Fanout+j)
			}
			nd.recompute(0)
		}
	}
}

// Find returns the index i of the leaf whose cumulative interval
// [sum(w[:i]), sum(w[:i+1])) contains u, for 0 <= u < Total(). Leaves with
// weight zero have empty intervals and are never returned. If rounding puts u
// at or past the end of the populated range, Find returns the last leaf with
// a positive weight. The caller must ensure Total() > 0 and u >= 0.
func (t *Tree) Find(u float64) int {
	i := 0
	for l := len(t.levels) - 1; l >= 0; l-- {
		p := &t.levels[l][i].prefix
		k := countLE(p, u)
		if k == Fanout {
			// Only reachable through rounding: take the last child with a
			// positive total, and the last positive one below it.
			k = lastPositive(p)
			u = math.Inf(1)
		}
		u -= before(p, k)
		i = i*Fanout + k
	}
	base := i * Fanout
	g := (*[Fanout]leaf)(t.leaves[base : base+Fanout])
	k := countLELeaves(g, u)
	if k == Fanout {
		for k = Fanout - 1; k > 0 && g[k].weight == 0; k-- {
		}
	}
	return base + k
}

// The prefix sums are non-decreasing, so the child containing u is the number
// of prefix sums <= u, which skips zero-weight children (their prefix sum
// equals the one before). Prefix sums and u are never negative, so their IEEE
// bit patterns order like their values and the count needs no branches:
// (ub-pb)>>63 is 1 exactly when pb > ub.

// countLE returns how many entries of p are <= u.
func countLE(p *[Fanout]float64, u float64) int {
	ub := math.Float64bits(u)
	var gt uint64
	for j := 0; j < Fanout; j += 4 {
		gt += (ub-math.Float64bits(p[j]))>>63 +
			(ub-math.Float64bits(p[j+1]))>>63 +
			(ub-math.Float64bits(p[j+2]))>>63 +
			(ub-math.Float64bits(p[j+3]))>>63
	}
	return Fanout - int(gt)
}

// countLELeaves returns how many prefix sums in g are <= u.
func countLELeaves(g *[Fanout]leaf, u float64) int {
	ub := math.Float64bits(u)
	var gt uint64
	for j := 0; j < Fanout; j += 4 {
		gt += (ub-math.Float64bits(g[j].prefix))>>63 +
			(ub-math.Float64bits(g[j+1].prefix))>>63 +
			(ub-math.Float64bits(g[j+2].prefix))>>63 +
			(ub-math.Float64bits(g[j+3].prefix))>>63
	}
	return Fanout - int(gt)
}

// before returns the prefix sum before child k (0 for k == 0) without a
// branch: for k == 0 it masks p[15] to +0.
func before(p *[Fanout]float64, k int) float64 {
	mask := -uint64((k + Fanout - 1) / Fanout) // all ones iff k > 0
	return math.Float64frombits(math.Float64bits(p[(k-1)&(Fanout-1)]) & mask)
}

// lastPositive returns the index of the last child whose prefix sum is
// greater than the one before it.
func lastPositive(p *[Fanout]float64) int {
	for j := Fanout - 1; j > 0; j-- {
		if p[j] > p[j-1] {
			return j
		}
	}
	return 0
}

func (t *Tree) checkIndex(i int) {
	if uint(i) >= uint(t.n) {
		panic(fmt.Sprintf("sumtree: index %d out of range [0,%d)", i, t.n))
	}
}

func checkWeight(w float64) {
	if !(w >= 0) || math.IsInf(w, 1) {
		panic(fmt.Sprintf("sumtree: invalid weight %v", w))
	}
}

// grow doubles the capacity, copying the leaves and rebuilding the sums.
func (t *Tree) grow() {
	old := t.leaves[:t.n]
	t.alloc(2 * len(t.leaves))
	copy(t.leaves, old)
	t.Rebuild()
}

// set stores w as the weight of leaf i and recomputes the sums above it.
func (t *Tree) set(i int, w float64) {
	if w == 0 {
		w = 0 // store -0 as +0
	}
	t.leaves[i].weight = w
	t.refresh(i, i)
}

// refresh recomputes the prefix sums above leaves a <= b, whose weights
// changed, from the changed children onward. Where the two paths meet, each
// node is recomputed once.
func (t *Tree) refresh(a, b int) {
	a, ja := a/Fanout, a%Fanout
	b, jb := b/Fanout, b%Fanout
	ta := t.recomputeGroup(a*Fanout, ja)
	tb := ta
	if b != a {
		tb = t.recomputeGroup(b*Fanout, jb)
	}
	for _, lvl := range t.levels {
		a, ja = a/Fanout, a%Fanout
		b, jb = b/Fanout, b%Fanout
		na := &lvl[a]
		na.total[ja] = ta
		if b == a {
			na.total[jb] = tb
			ta = na.recompute(ja)
			tb = ta
			continue
		}
		ta = na.recompute(ja)
		nb := &lvl[b]
		nb.total[jb] = tb
		tb = nb.recompute(jb)
	}
}

// recomputeGroup recomputes prefix sums j.. of the leaf group starting at
// base and returns the group's total.
func (t *Tree) recomputeGroup(base, j int) float64 {
	g := (*[Fanout]leaf)(t.leaves[base : base+Fanout])
	var acc float64
	if j > 0 {
		acc = g[j-1].prefix
	}
	for ; j < Fanout; j++ {
		acc += g[j].weight
		g[j].prefix = acc
	}
	return acc
}

// recompute recomputes prefix sums j.. from the totals and returns the
// node's total.
func (nd *node) recompute(j int) float64 {
	var acc float64
	if j > 0 {
		acc = nd.prefix[j-1]
	}
	for ; j < Fanout; j++ {
		acc += nd.total[j]
		nd.prefix[j] = acc
	}
	return acc
}

// childTotal returns the total of child c of a level-l node (used by
// Rebuild): the last prefix sum of that leaf group or node, or zero past the
// end of the level below.
func (t *Tree) childTotal(l, c int) float64 {
	if l == 0 {
		if last := c*Fanout + Fanout - 1; last < len(t.leaves) {
			return t.leaves[last].prefix
		}
		return 0
	}
	if below := t.levels[l-1]; c < len(below) {
		return below[c].prefix[Fanout-1]
	}
	return 0
}
