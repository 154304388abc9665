package sampler

import (
	"fmt"

	"github.com/recall-rl/recall/internal/keyindex"
)

// NewDense is New for selectors whose keys are small non-negative integers
// that are reused after deletion, such as a table's slot numbers: keys are
// then found by array index instead of by hashing, which saves a cache miss
// per operation on large selectors. Keys must not exceed
// keyindex.MaxDenseKey; memory grows with the largest key inserted.
func NewDense(spec Spec, seed uint64) (Selector, error) {
	s, err := New(spec, seed)
	if err != nil {
		return nil, err
	}
	d, ok := s.(interface{ useDenseKeys() })
	if !ok {
		return nil, fmt.Errorf("%w: %s has no dense-key form", ErrInvalidSpec, spec)
	}
	d.useDenseKeys()
	return s, nil
}

// useDenseKeys switches an empty selector to a dense key index.
func (s *Uniform) useDenseKeys()     { s.pos = keyindex.NewDense() }
func (s *Prioritized) useDenseKeys() { s.pos = keyindex.NewDense() }
func (s *FIFO) useDenseKeys()        { s.l.pos = keyindex.NewDense() }
func (s *LIFO) useDenseKeys()        { s.l.pos = keyindex.NewDense() }
func (s *MinHeap) useDenseKeys()     { s.h.pos = keyindex.NewDense() }
func (s *MaxHeap) useDenseKeys()     { s.h.pos = keyindex.NewDense() }
