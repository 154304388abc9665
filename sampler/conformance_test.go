package sampler

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// specs lists one spec per selector kind, plus extra Prioritized exponents.
var specs = []Spec{
	UniformSpec(),
	PrioritizedSpec(0),
	PrioritizedSpec(0.6),
	PrioritizedSpec(1),
	PrioritizedSpec(2.5),
	FIFOSpec(),
	LIFOSpec(),
	MinHeapSpec(),
	MaxHeapSpec(),
}

func mustNew(t testing.TB, spec Spec, seed uint64) Selector {
	t.Helper()
	s, err := New(spec, seed)
	if err != nil {
		t.Fatalf("New(%v): %v", spec, err)
	}
	return s
}

func mustInsert(t testing.TB, s Selector, key uint64, p float64) {
	t.Helper()
	if err := s.Insert(key, p); err != nil {
		t.Fatalf("Insert(%d, %v): %v", key, p, err)
	}
}

func mustSample(t testing.TB, s Selector) Sample {
	t.Helper()
	got, err := s.Sample()
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	return got
}

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// forEachSpec runs f as a subtest for every spec.
func forEachSpec(t *testing.T, f func(t *testing.T, spec Spec)) {
	for _, spec := range specs {
		t.Run("spec="+spec.String(), func(t *testing.T) { f(t, spec) })
	}
}

// checkProbability checks the probability that deterministic and uniform
// selectors must report; Prioritized is checked by the distribution tests.
func checkProbability(t testing.TB, s Selector, got Sample) {
	t.Helper()
	var want float64
	switch s.Spec().Kind {
	case KindUniform:
		want = 1 / float64(s.Len())
	case KindPrioritized:
		if !(got.Probability > 0 && got.Probability <= 1) {
			t.Fatalf("probability %v not in (0, 1]", got.Probability)
		}
		return
	default:
		want = 1
	}
	if got.Probability != want {
		t.Fatalf("probability %v, want %v", got.Probability, want)
	}
}

func TestConformanceEmpty(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		s := mustNew(t, spec, 1)
		if s.Len() != 0 {
			t.Fatalf("Len = %d on a new selector", s.Len())
		}
		_, err := s.Sample()
		wantErr(t, "Sample on empty", err, ErrEmpty)
		wantErr(t, "Update on empty", s.Update(1, 1), ErrKeyNotFound)
		wantErr(t, "Delete on empty", s.Delete(1), ErrKeyNotFound)
		s.Clear()
		if s.Len() != 0 {
			t.Fatalf("Len = %d after Clear", s.Len())
		}
	})
}

func TestConformanceBasic(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		s := mustNew(t, spec, 1)
		present := map[uint64]bool{}
		for k := uint64(1); k <= 20; k++ {
			mustInsert(t, s, k*7919, float64(k))
			present[k*7919] = true
			if s.Len() != len(present) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(present))
			}
			got := mustSample(t, s)
			if !present[got.Key] {
				t.Fatalf("sampled absent key %d", got.Key)
			}
			checkProbability(t, s, got)
		}
		for k := uint64(1); k <= 20; k++ {
			if err := s.Update(k*7919, float64(21-k)); err != nil {
				t.Fatalf("Update(%d): %v", k*7919, err)
			}
		}
		// Delete every other key; deleted keys are never sampled again.
		for k := uint64(2); k <= 20; k += 2 {
			if err := s.Delete(k * 7919); err != nil {
				t.Fatalf("Delete(%d): %v", k*7919, err)
			}
			delete(present, k*7919)
		}
		if s.Len() != 10 {
			t.Fatalf("Len = %d after deletes, want 10", s.Len())
		}
		for range 2000 {
			got := mustSample(t, s)
			if !present[got.Key] {
				t.Fatalf("sampled deleted key %d", got.Key)
			}
			checkProbability(t, s, got)
		}
		// A deleted key can be inserted again; a present one cannot.
		mustInsert(t, s, 2*7919, 1)
		wantErr(t, "re-Insert", s.Insert(2*7919, 1), ErrKeyExists)
		wantErr(t, "second Delete", s.Delete(4*7919), ErrKeyNotFound)

		s.Clear()
		if s.Len() != 0 {
			t.Fatalf("Len = %d after Clear", s.Len())
		}
		_, err := s.Sample()
		wantErr(t, "Sample after Clear", err, ErrEmpty)
		wantErr(t, "Update after Clear", s.Update(7919, 1), ErrKeyNotFound)
		// Cleared keys can be inserted again and the selector works as new.
		for k := uint64(1); k <= 5; k++ {
			mustInsert(t, s, k*7919, 1)
		}
		if s.Len() != 5 {
			t.Fatalf("Len = %d after re-inserting, want 5", s.Len())
		}
		checkProbability(t, s, mustSample(t, s))
	})
}

func TestConformanceSingleKey(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		for _, p := range []float64{0, 0.25, 7} {
			s := mustNew(t, spec, 3)
			mustInsert(t, s, 42, p)
			for range 10 {
				got := mustSample(t, s)
				if got != (Sample{Key: 42, Probability: 1}) {
					t.Fatalf("priority %v: Sample = %+v, want key 42 with probability 1", p, got)
				}
			}
		}
	})
}

var badPriorities = []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, -math.SmallestNonzeroFloat64, -math.MaxFloat64}

// TestConformanceErrorsLeaveStateUnchanged applies the same valid calls to
// two selectors built with the same seed, and failing calls to only one of
// them; both must then behave identically.
func TestConformanceErrorsLeaveStateUnchanged(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		a, b := mustNew(t, spec, 9), mustNew(t, spec, 9)
		both := func(f func(s Selector) error) {
			t.Helper()
			for _, s := range []Selector{a, b} {
				if err := f(s); err != nil {
					t.Fatal(err)
				}
			}
		}
		for k := uint64(0); k < 30; k++ {
			both(func(s Selector) error { return s.Insert(k, float64(k%4)) })
		}
		both(func(s Selector) error { return s.Delete(3) })

		// Failing calls, on a only.
		for _, k := range []uint64{0, 5, 29} {
			wantErr(t, fmt.Sprintf("Insert(%d) existing", k), a.Insert(k, 1), ErrKeyExists)
		}
		for _, k := range []uint64{3, 30, math.MaxUint64} {
			wantErr(t, fmt.Sprintf("Update(%d) missing", k), a.Update(k, 1), ErrKeyNotFound)
			wantErr(t, fmt.Sprintf("Delete(%d) missing", k), a.Delete(k), ErrKeyNotFound)
		}
		for _, p := range badPriorities {
			wantErr(t, fmt.Sprintf("Insert(new, %v)", p), a.Insert(100, p), ErrInvalidPriority)
			wantErr(t, fmt.Sprintf("Insert(existing, %v)", p), a.Insert(5, p), ErrInvalidPriority)
			wantErr(t, fmt.Sprintf("Update(existing, %v)", p), a.Update(5, p), ErrInvalidPriority)
			wantErr(t, fmt.Sprintf("Update(missing, %v)", p), a.Update(100, p), ErrInvalidPriority)
		}
		if a.Len() != b.Len() {
			t.Fatalf("Len %d after failed calls, want %d", a.Len(), b.Len())
		}
		compareRuns(t, a, b)
	})
}

// compareRuns checks that a and b give the same samples under the same calls.
func compareRuns(t *testing.T, a, b Selector) {
	t.Helper()
	for i := range 300 {
		ga, gb := mustSample(t, a), mustSample(t, b)
		if ga != gb {
			t.Fatalf("draw %d: %+v vs %+v", i, ga, gb)
		}
		// Keep changing both so that ordering state (heap positions,
		// recency, tree leaves) is exercised too.
		key := ga.Key
		switch i % 3 {
		case 0:
			for _, s := range []Selector{a, b} {
				if err := s.Update(key, float64(i%5)); err != nil {
					t.Fatal(err)
				}
			}
		case 1:
			for _, s := range []Selector{a, b} {
				if err := s.Delete(key); err != nil {
					t.Fatal(err)
				}
				if err := s.Insert(key+1000, float64(i%7)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func TestConformanceNegativeZeroPriority(t *testing.T) {
	negZero := math.Copysign(0, -1)
	forEachSpec(t, func(t *testing.T, spec Spec) {
		s := mustNew(t, spec, 1)
		mustInsert(t, s, 1, negZero)
		mustInsert(t, s, 2, 1)
		if err := s.Update(2, negZero); err != nil {
			t.Fatalf("Update(-0): %v", err)
		}
		checkProbability(t, s, mustSample(t, s))
	})
}

func TestConformanceDeterministic(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		run := func(seed uint64) []Sample {
			s := mustNew(t, spec, seed)
			for k := range uint64(100) {
				mustInsert(t, s, k, float64(k%9)+0.5)
			}
			var out []Sample
			for range 50 {
				out = append(out, mustSample(t, s))
			}
			return out
		}
		a, b, c := run(5), run(5), run(6)
		same := true
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("same seed, draw %d: %+v vs %+v", i, a[i], b[i])
			}
			same = same && a[i] == c[i]
		}
		random := spec.Kind == KindUniform || spec.Kind == KindPrioritized
		if random && same {
			t.Fatalf("seeds 5 and 6 gave identical draws")
		}
		if !random && !same {
			t.Fatalf("deterministic selector depends on the seed")
		}
	})
}

func TestConformanceSpec(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		s := mustNew(t, spec, 1)
		if got := s.Spec(); got != spec {
			t.Fatalf("Spec() = %+v, want %+v", got, spec)
		}
		if err := s.Spec().Validate(); err != nil {
			t.Fatalf("Spec().Validate(): %v", err)
		}
		again := mustNew(t, s.Spec(), 1)
		if fmt.Sprintf("%T", again) != fmt.Sprintf("%T", s) || again.Spec() != spec {
			t.Fatalf("New(Spec()) built %T %v, want %T %v", again, again.Spec(), s, spec)
		}
		k, err := ParseKind(spec.Kind.String())
		if err != nil || k != spec.Kind {
			t.Fatalf("ParseKind(%q) = %v, %v", spec.Kind.String(), k, err)
		}
	})
}

func TestConstructorsMatchNew(t *testing.T) {
	p, err := NewPrioritized(0.6, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    Selector
		spec Spec
	}{
		{NewUniform(1), UniformSpec()},
		{p, PrioritizedSpec(0.6)},
		{NewFIFO(), FIFOSpec()},
		{NewLIFO(), LIFOSpec()},
		{NewMinHeap(), MinHeapSpec()},
		{NewMaxHeap(), MaxHeapSpec()},
	} {
		if c.s.Spec() != c.spec {
			t.Errorf("%T.Spec() = %v, want %v", c.s, c.s.Spec(), c.spec)
		}
	}
}

func TestKindStringParse(t *testing.T) {
	for k := KindUniform; k <= KindMaxHeap; k++ {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	aliases := map[string]Kind{
		"UNIFORM": KindUniform, " Prioritized ": KindPrioritized, "Fifo": KindFIFO, "lifo": KindLIFO,
		"min-heap": KindMinHeap, "minheap": KindMinHeap, "Min Heap": KindMinHeap,
		"max_heap": KindMaxHeap, "MaxHeap": KindMaxHeap, "max-heap": KindMaxHeap,
	}
	for s, want := range aliases {
		if got, err := ParseKind(s); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "invalid", "heap", "random", "kind(1)", "min__heap"} {
		if k, err := ParseKind(s); !errors.Is(err, ErrInvalidSpec) || k != KindInvalid {
			t.Errorf("ParseKind(%q) = %v, %v; want KindInvalid, ErrInvalidSpec", s, k, err)
		}
	}
	if got := KindInvalid.String(); got != "invalid" {
		t.Errorf("KindInvalid.String() = %q", got)
	}
	if got := Kind(42).String(); got != "kind(42)" {
		t.Errorf("Kind(42).String() = %q", got)
	}
}

func TestSpecString(t *testing.T) {
	for spec, want := range map[Spec]string{
		UniformSpec():           "uniform",
		PrioritizedSpec(0.6):    "prioritized(0.6)",
		PrioritizedSpec(1):      "prioritized(1)",
		FIFOSpec():              "fifo",
		LIFOSpec():              "lifo",
		MinHeapSpec():           "min_heap",
		MaxHeapSpec():           "max_heap",
		{Kind: KindInvalid}:     "invalid",
		{Kind: Kind(9)}:         "kind(9)",
		{Kind: KindPrioritized}: "prioritized(0)",
	} {
		if got := spec.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", spec, got, want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	good := []Spec{
		UniformSpec(), FIFOSpec(), LIFOSpec(), MinHeapSpec(), MaxHeapSpec(),
		PrioritizedSpec(0), PrioritizedSpec(0.6), PrioritizedSpec(1), PrioritizedSpec(100),
		{Kind: KindUniform, PriorityExponent: math.Copysign(0, -1)},
	}
	for _, spec := range good {
		if err := spec.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", spec, err)
		}
	}
	bad := []Spec{
		{},
		{Kind: KindInvalid},
		{Kind: Kind(7)},
		{Kind: Kind(255)},
		PrioritizedSpec(-0.5),
		PrioritizedSpec(math.NaN()),
		PrioritizedSpec(math.Inf(1)),
		PrioritizedSpec(math.Inf(-1)),
		{Kind: KindUniform, PriorityExponent: 0.6},
		{Kind: KindFIFO, PriorityExponent: 1},
		{Kind: KindMaxHeap, PriorityExponent: math.NaN()},
	}
	for _, spec := range bad {
		if err := spec.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v.Validate() = %v, want ErrInvalidSpec", spec, err)
		}
		s, err := New(spec, 1)
		if !errors.Is(err, ErrInvalidSpec) || s != nil {
			t.Errorf("New(%+v) = %v, %v; want nil, ErrInvalidSpec", spec, s, err)
		}
	}
	for _, a := range []float64{-1, math.NaN(), math.Inf(1)} {
		if p, err := NewPrioritized(a, 1); !errors.Is(err, ErrInvalidSpec) || p != nil {
			t.Errorf("NewPrioritized(%v) = %v, %v; want nil, ErrInvalidSpec", a, p, err)
		}
	}
}

func TestPrioritizedOverflow(t *testing.T) {
	p, err := NewPrioritized(2, 1)
	if err != nil {
		t.Fatal(err)
	}
	// 1e200^2 overflows on its own.
	wantErr(t, "Insert(1e200)", p.Insert(1, 1e200), ErrInvalidPriority)
	mustInsert(t, p, 1, 1e150) // weight 1e300
	mustInsert(t, p, 2, 1)
	wantErr(t, "Update(1e200)", p.Update(2, 1e200), ErrInvalidPriority)

	q, err := NewPrioritized(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustInsert(t, q, 1, math.MaxFloat64)
	mustInsert(t, q, 2, 0)
	// Each weight is finite but the total would not be.
	wantErr(t, "Insert making total overflow", q.Insert(3, math.MaxFloat64), ErrInvalidPriority)
	wantErr(t, "Update making total overflow", q.Update(2, math.MaxFloat64), ErrInvalidPriority)
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
	for range 100 {
		if got := mustSample(t, q); got != (Sample{Key: 1, Probability: 1}) {
			t.Fatalf("Sample = %+v, want key 1 with probability 1", got)
		}
	}
	// The rejected key is absent and the updated key kept priority 0.
	wantErr(t, "Delete(3)", q.Delete(3), ErrKeyNotFound)
	if err := q.Delete(1); err != nil {
		t.Fatal(err)
	}
	if got := mustSample(t, q); got != (Sample{Key: 2, Probability: 1}) {
		t.Fatalf("Sample = %+v, want key 2 with probability 1", got)
	}
}

func TestSampleDoesNotAllocate(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		s := mustNew(t, spec, 1)
		for k := range uint64(1000) {
			mustInsert(t, s, k, float64(k%10))
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := s.Sample(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("Sample allocates %v times per call", allocs)
		}
	})
}

// TestSteadyStateDoesNotAllocate checks that once a selector has grown to
// its working size, inserting and deleting keys allocates nothing.
func TestSteadyStateDoesNotAllocate(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		s := mustNew(t, spec, 1)
		const size = 1000
		for k := range uint64(size) {
			mustInsert(t, s, k, float64(k%10))
		}
		next := uint64(size)
		allocs := testing.AllocsPerRun(5000, func() {
			if err := s.Insert(next, float64(next%7)); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(next, 1); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(next - size); err != nil {
				t.Fatal(err)
			}
			next++
		})
		if allocs != 0 {
			t.Fatalf("Insert+Update+Delete allocate %v times per call", allocs)
		}
	})
}
