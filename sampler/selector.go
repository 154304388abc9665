package sampler

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/recall-rl/recall/internal/keyindex"
)

// Errors returned by selectors. They are returned wrapped with the key or
// value at fault; test with errors.Is.
var (
	// ErrKeyExists is returned by Insert for a key the selector already holds.
	ErrKeyExists = errors.New("sampler: key already exists")
	// ErrKeyNotFound is returned by Update and Delete for an unknown key.
	ErrKeyNotFound = errors.New("sampler: key not found")
	// ErrInvalidPriority is returned for a NaN, infinite or negative priority.
	ErrInvalidPriority = errors.New("sampler: invalid priority")
	// ErrEmpty is returned by Sample when the selector holds no keys.
	ErrEmpty = errors.New("sampler: empty")
	// ErrInvalidSpec is returned by New and Spec.Validate for a bad spec.
	ErrInvalidSpec = errors.New("sampler: invalid spec")
)

// Selector picks keys from a set of prioritised keys. A table uses one
// selector to choose what to sample and another to choose what to evict.
//
// Selectors hold no locks: the owner (a table) serialises every call.
// Insert, Update and Delete leave the selector unchanged when they fail.
// They check the priority before the key, so a call that is wrong in both
// ways returns ErrInvalidPriority.
type Selector interface {
	// Insert adds a new key. The key must not be present and the priority
	// must be finite and >= 0 (every selector checks, even those that ignore
	// priorities).
	Insert(key uint64, priority float64) error
	// Update changes the priority of a present key.
	Update(key uint64, priority float64) error
	// Delete removes a present key.
	Delete(key uint64) error
	// Sample picks one key without removing it, with the probability that
	// this key would be picked. It returns ErrEmpty when there are no keys.
	Sample() (Sample, error)
	// Len returns the number of keys held.
	Len() int
	// Clear removes every key.
	Clear()
	// Spec returns the description this selector was built from.
	Spec() Spec
}

// Sample is the outcome of Selector.Sample.
type Sample struct {
	Key uint64
	// Probability is the chance that Key was the one picked: 1/N for
	// Uniform, p^a/sum(p^a) for Prioritized (1/N if the sum is 0), and 1 for
	// the deterministic selectors.
	Probability float64
}

// Kind names a selector algorithm.
type Kind uint8

// Selector kinds. The numeric values are stored in checkpoints and must
// never change.
const (
	KindInvalid Kind = iota
	KindUniform
	KindPrioritized
	KindFIFO
	KindLIFO
	KindMinHeap
	KindMaxHeap
)

var kindNames = [...]string{
	KindInvalid:     "invalid",
	KindUniform:     "uniform",
	KindPrioritized: "prioritized",
	KindFIFO:        "fifo",
	KindLIFO:        "lifo",
	KindMinHeap:     "min_heap",
	KindMaxHeap:     "max_heap",
}

// String returns the kind's name as used in config files, e.g. "min_heap".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind parses a kind name (case-insensitive; "min-heap" and "minheap"
// are accepted for "min_heap").
func ParseKind(s string) (Kind, error) {
	norm := strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(strings.TrimSpace(s)))
	switch norm {
	case "minheap":
		norm = "min_heap"
	case "maxheap":
		norm = "max_heap"
	}
	for k := KindUniform; int(k) < len(kindNames); k++ {
		if kindNames[k] == norm {
			return k, nil
		}
	}
	return KindInvalid, fmt.Errorf("%w: unknown selector %q (want uniform, prioritized, fifo, lifo, min_heap or max_heap)", ErrInvalidSpec, s)
}

// Spec describes a selector: its kind and, for Prioritized, the priority
// exponent. It is what table options, config files and checkpoints store.
type Spec struct {
	Kind Kind
	// PriorityExponent is the exponent a in p^a; used only by Prioritized.
	PriorityExponent float64
}

// UniformSpec returns the spec of a [Uniform] selector.
func UniformSpec() Spec { return Spec{Kind: KindUniform} }

// PrioritizedSpec returns the spec of a [Prioritized] selector with the given
// priority exponent.
func PrioritizedSpec(exponent float64) Spec {
	return Spec{Kind: KindPrioritized, PriorityExponent: exponent}
}

// FIFOSpec returns the spec of a [FIFO] selector.
func FIFOSpec() Spec { return Spec{Kind: KindFIFO} }

// LIFOSpec returns the spec of a [LIFO] selector.
func LIFOSpec() Spec { return Spec{Kind: KindLIFO} }

// MinHeapSpec returns the spec of a [MinHeap] selector.
func MinHeapSpec() Spec { return Spec{Kind: KindMinHeap} }

// MaxHeapSpec returns the spec of a [MaxHeap] selector.
func MaxHeapSpec() Spec { return Spec{Kind: KindMaxHeap} }

// Validate reports whether the spec describes a selector New can build.
func (s Spec) Validate() error {
	switch s.Kind {
	case KindUniform, KindFIFO, KindLIFO, KindMinHeap, KindMaxHeap:
		if s.PriorityExponent != 0 {
			return fmt.Errorf("%w: priority exponent %v is only meaningful for prioritized", ErrInvalidSpec, s.PriorityExponent)
		}
		return nil
	case KindPrioritized:
		if math.IsNaN(s.PriorityExponent) || math.IsInf(s.PriorityExponent, 0) || s.PriorityExponent < 0 {
			return fmt.Errorf("%w: priority exponent must be finite and >= 0, got %v", ErrInvalidSpec, s.PriorityExponent)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %d", ErrInvalidSpec, uint8(s.Kind))
}

// String formats the spec, e.g. "uniform" or "prioritized(0.6)".
func (s Spec) String() string {
	if s.Kind == KindPrioritized {
		return "prioritized(" + strconv.FormatFloat(s.PriorityExponent, 'g', -1, 64) + ")"
	}
	return s.Kind.String()
}

// New builds the selector described by spec. Selectors that draw random
// numbers use a PCG source seeded with seed, so equal seeds and equal call
// sequences give equal results.
func New(spec Spec, seed uint64) (Selector, error) { return build(spec, seed, keyindex.New) }

// NewDense is New for selectors whose keys are small non-negative integers
// that are reused after deletion, such as a table's slot numbers: keys are
// then found by array index instead of by hashing, which saves a cache miss
// per operation on large selectors. Keys must not exceed
// keyindex.MaxDenseKey; memory grows with the largest key inserted.
func NewDense(spec Spec, seed uint64) (Selector, error) {
	return build(spec, seed, keyindex.NewDense)
}

// build is New and NewDense: newIndex makes the selector's key index.
func build(spec Spec, seed uint64, newIndex func() keyindex.Index) (Selector, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	switch spec.Kind {
	case KindUniform:
		return newUniform(seed, newIndex()), nil
	case KindPrioritized:
		return newPrioritized(spec.PriorityExponent, seed, newIndex()), nil
	case KindFIFO:
		return &FIFO{l: newList(newIndex())}, nil
	case KindLIFO:
		return &LIFO{l: newList(newIndex())}, nil
	case KindMinHeap:
		return &MinHeap{h: newHeap(false, newIndex())}, nil
	default:
		return &MaxHeap{h: newHeap(true, newIndex())}, nil
	}
}

// ValidPriority reports whether p is a priority every selector accepts:
// finite and >= 0 (NaN, infinities and negative numbers are not). Callers
// that check priorities before they reach a selector, such as tables, use it
// so that there is one rule.
func ValidPriority(p float64) bool {
	return !math.IsNaN(p) && !math.IsInf(p, 0) && p >= 0
}

// checkPriority returns ErrInvalidPriority (wrapped) unless p is finite and >= 0.
func checkPriority(key uint64, p float64) error {
	if !ValidPriority(p) {
		return fmt.Errorf("%w: key %d has priority %v (must be finite and >= 0)", ErrInvalidPriority, key, p)
	}
	return nil
}
