package sumtree

import (
	"math"
	"math/rand/v2"
	"testing"
)

// checkAgainst verifies the tree against a plain slice of weights.
func checkAgainst(t *testing.T, tr *Tree, want []float64) {
	t.Helper()
	if tr.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", tr.Len(), len(want))
	}
	var sum float64
	for i, w := range want {
		if got, v := tr.Leaf(i); got != w || v != valueOf(w) {
			t.Fatalf("Leaf(%d) = %v, %d, want %v, %d", i, got, v, w, valueOf(w))
		}
		sum += w
	}
	if d := math.Abs(tr.Total() - sum); d > 1e-9*math.Max(1, sum) {
		t.Fatalf("Total = %v, want %v (diff %g)", tr.Total(), sum, d)
	}
	// The incrementally maintained nodes must equal a rebuild bit for bit.
	before := snapshot(tr)
	tr.Rebuild()
	after := snapshot(tr)
	for l := range before {
		for i := range before[l] {
			if math.Float64bits(before[l][i]) != math.Float64bits(after[l][i]) {
				t.Fatalf("level %d entry %d: incremental %v, rebuilt %v", l, i, before[l][i], after[l][i])
			}
		}
	}
}

// valueOf is the value the tests attach to a leaf of weight w.
func valueOf(w float64) uint64 { return math.Float64bits(w) ^ 0x5555 }

func snapshot(tr *Tree) [][]float64 {
	var s [][]float64
	var p []float64
	for _, l := range tr.leaves {
		p = append(p, l.prefix)
	}
	s = append(s, p)
	for _, lvl := range tr.levels {
		var f []float64
		for _, nd := range lvl {
			f = append(f, nd.prefix[:]...)
			f = append(f, nd.total[:]...)
		}
		s = append(s, f)
	}
	return s
}

// naiveFind is the reference for Find.
func naiveFind(w []float64, u float64) int {
	var acc float64
	for i, x := range w {
		acc += x
		if u < acc && x > 0 {
			return i
		}
	}
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return i
		}
	}
	return -1
}

func TestZeroValue(t *testing.T) {
	var tr Tree
	if tr.Len() != 0 || tr.Total() != 0 {
		t.Fatalf("zero tree: Len %d Total %v", tr.Len(), tr.Total())
	}
	tr.Push(2, valueOf(2))
	tr.Push(3, valueOf(3))
	checkAgainst(t, &tr, []float64{2, 3})
	if got := tr.Find(2.5); got != 1 {
		t.Fatalf("Find(2.5) = %d, want 1", got)
	}
}

func TestRandomOps(t *testing.T) {
	for _, capacity := range []int{0, 1, 17, 1000} {
		r := rand.New(rand.NewPCG(uint64(capacity), 7))
		tr := New(capacity)
		var ref []float64
		for step := range 20000 {
			switch op := r.IntN(10); {
			case op < 4 || len(ref) == 0:
				w := randWeight(r)
				tr.Push(w, valueOf(w))
				ref = append(ref, w)
			case op < 5:
				i := r.IntN(len(ref))
				last := len(ref) - 1
				moved, ok := tr.Delete(i)
				if ok != (i != last) || (ok && moved != valueOf(ref[last])) {
					t.Fatalf("Delete(%d) of %d = %d, %v", i, len(ref), moved, ok)
				}
				ref[i] = ref[last]
				ref = ref[:last]
			case op < 6:
				got, v := tr.Pop()
				if want := ref[len(ref)-1]; got != want || v != valueOf(want) {
					t.Fatalf("Pop = %v, %d, want %v, %d", got, v, want, valueOf(want))
				}
				ref = ref[:len(ref)-1]
			default:
				i := r.IntN(len(ref))
				w := randWeight(r)
				if r.IntN(2) == 0 {
					tr.SetLeaf(i, w, valueOf(w))
				} else {
					tr.Set(i, w)
					if _, v := tr.Leaf(i); v != valueOf(ref[i]) {
						t.Fatalf("Set changed the value of leaf %d", i)
					}
					tr.SetLeaf(i, w, valueOf(w))
				}
				ref[i] = w
			}
			if step%997 == 0 {
				checkAgainst(t, tr, ref)
			}
			if len(ref) > 0 && tr.Total() > 0 {
				u := r.Float64() * tr.Total()
				got := tr.Find(u)
				if got < 0 || got >= len(ref) || ref[got] == 0 {
					t.Fatalf("Find(%v) = %d: out of range or zero weight", u, got)
				}
				// Away from interval boundaries the answer must match the
				// naive prefix scan exactly.
				if want := naiveFind(ref, u); want != got {
					lo, hi := prefix(ref, want)
					if u-lo > 1e-9 && hi-u > 1e-9 {
						t.Fatalf("Find(%v) = %d, want %d", u, got, want)
					}
				}
			}
		}
		checkAgainst(t, tr, ref)
		tr.Reset()
		checkAgainst(t, tr, nil)
	}
}

func prefix(w []float64, i int) (lo, hi float64) {
	for _, x := range w[:i] {
		lo += x
	}
	return lo, lo + w[i]
}

func randWeight(r *rand.Rand) float64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return float64(r.IntN(5))
	default:
		return r.ExpFloat64() * math.Pow(10, float64(r.IntN(7)-3))
	}
}

func TestFindSkipsZeros(t *testing.T) {
	tr := New(0)
	w := make([]float64, 300)
	for i := range w {
		if i%37 == 5 {
			w[i] = 1
		}
		tr.Push(w[i], uint64(i))
	}
	total := tr.Total()
	if total != 8 {
		t.Fatalf("Total = %v, want 8", total)
	}
	for _, u := range []float64{0, 0.5, 1, 3.999, 4, 8.5, math.Nextafter(8, 0), 8, 100} {
		got := tr.Find(u)
		if w[got] == 0 {
			t.Fatalf("Find(%v) = %d, a zero-weight leaf", u, got)
		}
	}
	// u at or beyond the total clamps to the last positive leaf.
	if got := tr.Find(total); got != 5+37*7 {
		t.Fatalf("Find(total) = %d, want %d", got, 5+37*7)
	}
}

func TestFindDistribution(t *testing.T) {
	tr := New(0)
	w := []float64{1, 0, 2, 0, 0, 3, 4}
	for _, x := range w {
		tr.Push(x, 0)
	}
	counts := make([]int, len(w))
	const steps = 1000
	for s := range steps {
		u := (float64(s) + 0.5) / steps * tr.Total()
		counts[tr.Find(u)]++
	}
	want := []int{100, 0, 200, 0, 0, 300, 400}
	for i := range w {
		if counts[i] != want[i] {
			t.Fatalf("counts = %v, want %v", counts, want)
		}
	}
}

func TestPanics(t *testing.T) {
	for name, f := range map[string]func(tr *Tree){
		"pop empty":    func(tr *Tree) { tr.Pop() },
		"weight range": func(tr *Tree) { tr.Weight(0) },
		"value range":  func(tr *Tree) { tr.Push(1, 0); tr.Value(1) },
		"set range":    func(tr *Tree) { tr.Set(0, 1) },
		"delete range": func(tr *Tree) { tr.Push(1, 0); tr.Delete(1) },
		"push nan":     func(tr *Tree) { tr.Push(math.NaN(), 0) },
		"push inf":     func(tr *Tree) { tr.Push(math.Inf(1), 0) },
		"push neg":     func(tr *Tree) { tr.Push(-1, 0) },
		"set neg":      func(tr *Tree) { tr.Push(1, 0); tr.Set(0, -1) },
		"setleaf nan":  func(tr *Tree) { tr.Push(1, 0); tr.SetLeaf(0, math.NaN(), 1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f(New(4))
		})
	}
}

func BenchmarkFind(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		tr := New(n)
		r := rand.New(rand.NewPCG(1, 1))
		for range n {
			tr.Push(r.Float64(), 0)
		}
		b.Run(sizeName(n), func(b *testing.B) {
			total := tr.Total()
			var s uint64
			for b.Loop() {
				_, v := tr.Leaf(tr.Find(r.Float64() * total))
				s += v
			}
			_ = s
		})
	}
}

func BenchmarkSet(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		tr := New(n)
		r := rand.New(rand.NewPCG(1, 1))
		for range n {
			tr.Push(r.Float64(), 0)
		}
		b.Run(sizeName(n), func(b *testing.B) {
			for b.Loop() {
				tr.Set(r.IntN(n), r.Float64())
			}
		})
	}
}

func sizeName(n int) string {
	if n == 1000 {
		return "size=1000"
	}
	return "size=1000000"
}

func TestNegativeZero(t *testing.T) {
	tr := New(0)
	tr.Push(math.Copysign(0, -1), 1)
	tr.Push(1, 2)
	if w := tr.Weight(0); math.Signbit(w) {
		t.Fatalf("weight -0 stored with its sign")
	}
	for _, u := range []float64{0, 0.5} {
		if got := tr.Find(u); got != 1 {
			t.Fatalf("Find(%v) = %d, want 1", u, got)
		}
	}
}

func TestGrowKeepsLeaves(t *testing.T) {
	tr := New(1)
	var ref []float64
	for i := range 5000 {
		w := float64(i % 7)
		tr.Push(w, valueOf(w))
		ref = append(ref, w)
	}
	if tr.Cap() < 5000 {
		t.Fatalf("Cap = %d", tr.Cap())
	}
	checkAgainst(t, tr, ref)
}
