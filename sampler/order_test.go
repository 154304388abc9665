package sampler

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// drain samples and deletes until s is empty, returning the keys in order.
func drain(t *testing.T, s Selector) []uint64 {
	t.Helper()
	var out []uint64
	for s.Len() > 0 {
		got := mustSample(t, s)
		if got.Probability != 1 {
			t.Fatalf("probability %v, want 1", got.Probability)
		}
		if err := s.Delete(got.Key); err != nil {
			t.Fatal(err)
		}
		out = append(out, got.Key)
	}
	return out
}

func TestFIFOOrderWithDeletes(t *testing.T) {
	s := NewFIFO()
	for k := uint64(1); k <= 10; k++ {
		mustInsert(t, s, k, float64(11-k))
	}
	if got := mustSample(t, s).Key; got != 1 {
		t.Fatalf("Sample = %d, want 1", got)
	}
	for _, k := range []uint64{1, 5, 6, 10} { // head, middle, tail
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	// Updates keep the place; a re-inserted key goes to the back.
	if err := s.Update(2, 100); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, 5, 0)
	mustInsert(t, s, 11, 0)
	want := []uint64{2, 3, 4, 7, 8, 9, 5, 11}
	if got := drain(t, s); !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestLIFOOrderWithDeletes(t *testing.T) {
	s := NewLIFO()
	for k := uint64(1); k <= 10; k++ {
		mustInsert(t, s, k, float64(k))
	}
	if got := mustSample(t, s).Key; got != 10 {
		t.Fatalf("Sample = %d, want 10", got)
	}
	for _, k := range []uint64{10, 5, 6, 1} {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(9, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustSample(t, s).Key; got != 9 {
		t.Fatalf("Sample after Update = %d, want 9", got)
	}
	mustInsert(t, s, 5, 3)
	want := []uint64{5, 9, 8, 7, 4, 3, 2}
	if got := drain(t, s); !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestListReusesNodes checks that a steady state of inserts and deletes
// does not grow the node slab.
func TestListReusesNodes(t *testing.T) {
	s := NewFIFO()
	for k := range uint64(100) {
		mustInsert(t, s, k, 0)
	}
	for k := uint64(100); k < 10_000; k++ {
		mustInsert(t, s, k, 0)
		if err := s.Delete(k - 100); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.l.nodes); n > 101 {
		t.Fatalf("slab grew to %d nodes for 100 live keys", n)
	}
	if got := mustSample(t, s).Key; got != 9900 {
		t.Fatalf("Sample = %d, want 9900", got)
	}
}

func TestHeapOrder(t *testing.T) {
	for _, isMax := range []bool{false, true} {
		var s Selector = NewMinHeap()
		if isMax {
			s = NewMaxHeap()
		}
		r := rand.New(rand.NewPCG(1, 2))
		type kp struct {
			key uint64
			p   float64
		}
		var items []kp
		for k := range uint64(500) {
			p := float64(r.IntN(40)) // many ties
			mustInsert(t, s, k, p)
			items = append(items, kp{k, p})
		}
		// Stable sort: among equal priorities, insertion order.
		sort.SliceStable(items, func(i, j int) bool {
			if isMax {
				return items[i].p > items[j].p
			}
			return items[i].p < items[j].p
		})
		var want []uint64
		for _, it := range items {
			want = append(want, it.key)
		}
		if got := drain(t, s); !slices.Equal(got, want) {
			t.Fatalf("max=%v: order %v\nwant %v", isMax, got, want)
		}
	}
}

func TestHeapTieBreaking(t *testing.T) {
	for _, c := range []struct {
		name string
		s    Selector
	}{{"min", NewMinHeap()}, {"max", NewMaxHeap()}} {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			for k := uint64(1); k <= 4; k++ {
				mustInsert(t, s, k, 5)
			}
			// Insertion order breaks ties.
			if got := mustSample(t, s).Key; got != 1 {
				t.Fatalf("Sample = %d, want 1", got)
			}
			// Updating to the same priority makes a key the most recent.
			if err := s.Update(1, 5); err != nil {
				t.Fatal(err)
			}
			if got := mustSample(t, s).Key; got != 2 {
				t.Fatalf("after Update(1): Sample = %d, want 2", got)
			}
			if err := s.Update(2, 5); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(3, 5); err != nil {
				t.Fatal(err)
			}
			if got := mustSample(t, s).Key; got != 4 {
				t.Fatalf("after Update(2), Update(3): Sample = %d, want 4", got)
			}
			// A key moved away and back is the most recent at its priority.
			if err := s.Update(4, 1); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(4, 5); err != nil {
				t.Fatal(err)
			}
			want := []uint64{1, 2, 3, 4}
			if got := drain(t, s); !slices.Equal(got, want) {
				t.Fatalf("order %v, want %v", got, want)
			}
		})
	}
}

func TestHeapUpdateMoves(t *testing.T) {
	s := NewMinHeap()
	for k := uint64(1); k <= 100; k++ {
		mustInsert(t, s, k, float64(k))
	}
	if err := s.Update(50, 0.5); err != nil {
		t.Fatal(err)
	}
	if got := mustSample(t, s).Key; got != 50 {
		t.Fatalf("Sample = %d, want 50", got)
	}
	if err := s.Update(50, 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(1, 99.5); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s)
	var want []uint64
	for k := uint64(3); k <= 99; k++ {
		if k != 50 {
			want = append(want, k)
		}
	}
	want = append(want, 1, 100, 50) // 1 now has priority 99.5, 50 has 1000
	if !slices.Equal(got, want) {
		t.Fatalf("order %v\nwant %v", got, want)
	}
}

func TestMaxHeapZeroPriorities(t *testing.T) {
	s := NewMaxHeap()
	mustInsert(t, s, 1, 0)
	mustInsert(t, s, 2, 0)
	mustInsert(t, s, 3, 1e-300)
	if got := drain(t, s); !slices.Equal(got, []uint64{3, 1, 2}) {
		t.Fatalf("order %v, want [3 1 2]", got)
	}
}
