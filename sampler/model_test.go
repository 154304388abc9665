package sampler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// model is a deliberately simple reference implementation of every selector:
// a map of keys, scanned in full for each sample.
type model struct {
	spec  Spec
	items map[uint64]*modelItem
	clock uint64 // bumped by every insert and update
}

type modelItem struct {
	priority float64
	inserted uint64 // clock at insert
	touched  uint64 // clock at last insert or update
}

func newModel(spec Spec) *model { return &model{spec: spec, items: map[uint64]*modelItem{}} }

// validPriority reports whether p is acceptable on its own: finite and >= 0
// and, for Prioritized, with p^a finite.
func (m *model) validPriority(p float64) bool {
	if !(p >= 0) || math.IsInf(p, 1) {
		return false
	}
	return m.spec.Kind != KindPrioritized || !math.IsInf(m.weight(p), 1)
}

// overflows reports whether giving key priority p would make the total
// weight of a Prioritized selector infinite.
func (m *model) overflows(key uint64, p float64) bool {
	if m.spec.Kind != KindPrioritized {
		return false
	}
	total := m.weight(p)
	for k, it := range m.items {
		if k != key {
			total += m.weight(it.priority)
		}
	}
	return math.IsInf(total, 1)
}

func (m *model) insert(key uint64, p float64) error {
	if !m.validPriority(p) {
		return ErrInvalidPriority
	}
	if m.items[key] != nil {
		return ErrKeyExists
	}
	if m.overflows(key, p) {
		return ErrInvalidPriority
	}
	m.clock++
	m.items[key] = &modelItem{priority: p, inserted: m.clock, touched: m.clock}
	return nil
}

func (m *model) update(key uint64, p float64) error {
	if !m.validPriority(p) {
		return ErrInvalidPriority
	}
	it := m.items[key]
	if it == nil {
		return ErrKeyNotFound
	}
	if m.overflows(key, p) {
		return ErrInvalidPriority
	}
	m.clock++
	it.priority, it.touched = p, m.clock
	return nil
}

func (m *model) delete(key uint64) error {
	if m.items[key] == nil {
		return ErrKeyNotFound
	}
	delete(m.items, key)
	return nil
}

// weight is p^a with 0^a = 0.
func (m *model) weight(p float64) float64 {
	if p == 0 {
		return 0
	}
	return math.Pow(p, m.spec.PriorityExponent)
}

// check verifies a sample taken from the real selector.
func (m *model) check(got Sample, err error) error {
	if len(m.items) == 0 {
		if !errors.Is(err, ErrEmpty) {
			return fmt.Errorf("Sample on empty: %v, %v", got, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("Sample: %v", err)
	}
	it := m.items[got.Key]
	if it == nil {
		return fmt.Errorf("sampled absent key %d", got.Key)
	}
	n := float64(len(m.items))
	switch m.spec.Kind {
	case KindUniform:
		if got.Probability != 1/n {
			return fmt.Errorf("probability %v, want %v", got.Probability, 1/n)
		}
		return nil
	case KindPrioritized:
		var sum float64
		for _, x := range m.items {
			sum += m.weight(x.priority)
		}
		want := 1 / n
		if sum > 0 {
			want = m.weight(it.priority) / sum
			if want == 0 {
				return fmt.Errorf("sampled key %d with priority 0 while the total is %v", got.Key, sum)
			}
		}
		if math.Abs(got.Probability-want) > 1e-9*want {
			return fmt.Errorf("key %d: probability %v, want %v", got.Key, got.Probability, want)
		}
		return nil
	}
	// Deterministic kinds: find the expected key.
	var best uint64
	var bestItem *modelItem
	for k, x := range m.items {
		if bestItem == nil || m.beats(x, bestItem) {
			best, bestItem = k, x
		}
	}
	if got.Key != best || got.Probability != 1 {
		return fmt.Errorf("Sample = %+v, want key %d with probability 1", got, best)
	}
	return nil
}

// beats reports whether a is picked before b by a deterministic kind.
func (m *model) beats(a, b *modelItem) bool {
	switch m.spec.Kind {
	case KindFIFO:
		return a.inserted < b.inserted
	case KindLIFO:
		return a.inserted > b.inserted
	case KindMinHeap:
		return a.priority < b.priority || (a.priority == b.priority && a.touched < b.touched)
	case KindMaxHeap:
		return a.priority > b.priority || (a.priority == b.priority && a.touched < b.touched)
	}
	panic("not deterministic: " + m.spec.String())
}

// sameClass reports whether two errors are both nil or match the same sentinel.
func sameClass(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

// modelOp is one operation of a random sequence.
type modelOp struct {
	kind     int // 0 insert, 1 update, 2 delete, 3 sample, 4 clear
	key      uint64
	priority float64
}

// step applies op to s and to m and compares the results.
func step(s Selector, m *model, op modelOp) error {
	var what string
	var got, want error
	switch op.kind {
	case 0:
		what = fmt.Sprintf("Insert(%d, %v)", op.key, op.priority)
		got, want = s.Insert(op.key, op.priority), m.insert(op.key, op.priority)
	case 1:
		what = fmt.Sprintf("Update(%d, %v)", op.key, op.priority)
		got, want = s.Update(op.key, op.priority), m.update(op.key, op.priority)
	case 2:
		what = fmt.Sprintf("Delete(%d)", op.key)
		got, want = s.Delete(op.key), m.delete(op.key)
	case 3:
		what = "Sample"
		smp, err := s.Sample()
		if e := m.check(smp, err); e != nil {
			return e
		}
	default:
		what = "Clear"
		s.Clear()
		m.items = map[uint64]*modelItem{}
	}
	if !sameClass(got, want) {
		return fmt.Errorf("%s = %v, want %v", what, got, want)
	}
	if s.Len() != len(m.items) {
		return fmt.Errorf("after %s Len = %d, want %d", what, s.Len(), len(m.items))
	}
	return nil
}

// TestAgainstModel runs long random operation sequences (fixed seeds) on
// every selector and on the reference model, comparing every result.
func TestAgainstModel(t *testing.T) {
	forEachSpec(t, func(t *testing.T, spec Spec) {
		for seed := range uint64(8) {
			// Odd seeds run the dense-key form (keys here are small).
			s := mustNew(t, spec, seed)
			if seed%2 == 1 {
				var err error
				if s, err = NewDense(spec, seed); err != nil {
					t.Fatal(err)
				}
			}
			m := newModel(spec)
			r := rand.New(rand.NewPCG(seed, 99))
			// A small key space makes collisions (existing/missing keys)
			// frequent; a small priority set makes ties frequent.
			keySpace := uint64(8 + 100*seed)
			prio := func() float64 {
				switch x := r.IntN(20); {
				case x == 0:
					return badPriorities[r.IntN(len(badPriorities))]
				case x < 4:
					return 0
				case x < 12:
					return float64(r.IntN(4))
				default:
					return r.ExpFloat64()
				}
			}
			for i := range 20_000 {
				op := modelOp{key: r.Uint64N(keySpace), priority: prio()}
				switch x := r.IntN(100); {
				case x < 30:
					op.kind = 0
				case x < 50:
					op.kind = 1
				case x < 70:
					op.kind = 2
				case x < 99:
					op.kind = 3
				default:
					op.kind = 4
				}
				if err := step(s, m, op); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, i, err)
				}
			}
		}
	})
}

// fuzzPriorities are the priorities a fuzz input can choose from.
var fuzzPriorities = []float64{0, 1, 2, 0.5, 3.75, 1e-300, 1e300, math.NaN(), math.Inf(1), -1, math.MaxFloat64}

// FuzzAgainstModel decodes the input as operations (three bytes each: kind,
// key, priority choice) and checks every selector against the model.
func FuzzAgainstModel(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 2, 2, 3, 0, 0, 1, 1, 0, 3, 0, 0, 2, 1, 0, 3, 0, 0})
	f.Add([]byte{0, 1, 0, 0, 2, 0, 0, 3, 0, 3, 0, 0, 1, 2, 5, 3, 0, 0, 4, 0, 0, 3, 0, 0})
	f.Add([]byte{0, 7, 3, 0, 7, 4, 1, 7, 8, 2, 7, 0, 2, 7, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, spec := range specs {
			s := mustNew(t, spec, 1)
			m := newModel(spec)
			for i := 0; i+2 < len(data); i += 3 {
				op := modelOp{
					kind:     int(data[i] % 5),
					key:      uint64(data[i+1] % 16),
					priority: fuzzPriorities[int(data[i+2])%len(fuzzPriorities)],
				}
				if err := step(s, m, op); err != nil {
					t.Fatalf("%v, op %d %+v: %v", spec, i/3, op, err)
				}
			}
		}
	})
}
