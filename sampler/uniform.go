package sampler

import "github.com/recall-rl/recall/internal/keyindex"

// Uniform samples every key with the same probability, 1/N. Priorities are
// validated but otherwise ignored.
//
// Keys are kept in a dense slice, with an index from key to position; Delete
// moves the last key into the hole. Insert, Update, Delete and Sample are
// O(1), and Sample does not allocate.
type Uniform struct {
	keys []uint64
	pos  keyindex.Index
	rng  rng
}

var _ Selector = (*Uniform)(nil)

// NewUniform returns an empty Uniform selector whose random draws are
// determined by seed.
func NewUniform(seed uint64) *Uniform { return newUniform(seed, keyindex.New()) }

func newUniform(seed uint64, pos keyindex.Index) *Uniform {
	return &Uniform{pos: pos, rng: newRNG(seed)}
}

// Insert adds key. The priority is checked but not used.
func (s *Uniform) Insert(key uint64, priority float64) error {
	if err := checkPriority(key, priority); err != nil {
		return err
	}
	if len(s.keys) >= maxKeys {
		return fullError(key)
	}
	if _, ok := s.pos.Insert(key, int32(len(s.keys))); !ok {
		return existsError(key)
	}
	s.keys = append(s.keys, key)
	return nil
}

// Update checks that key is present and priority valid; nothing else changes.
func (s *Uniform) Update(key uint64, priority float64) error {
	if err := checkPriority(key, priority); err != nil {
		return err
	}
	if _, ok := s.pos.Get(key); !ok {
		return notFoundError(key)
	}
	return nil
}

// Delete removes key.
func (s *Uniform) Delete(key uint64) error {
	i, ok := s.pos.Remove(key)
	if !ok {
		return notFoundError(key)
	}
	last := len(s.keys) - 1
	if int(i) != last {
		moved := s.keys[last]
		s.keys[i] = moved
		s.pos.Set(moved, i)
	}
	s.keys = s.keys[:last]
	return nil
}

// Sample returns a key chosen uniformly at random, with probability 1/N.
func (s *Uniform) Sample() (Sample, error) {
	n := len(s.keys)
	if n == 0 {
		return Sample{}, ErrEmpty
	}
	return Sample{Key: s.keys[s.rng.intN(n)], Probability: 1 / float64(n)}, nil
}

// Len returns the number of keys.
func (s *Uniform) Len() int { return len(s.keys) }

// Clear removes every key. The random source is not reset.
func (s *Uniform) Clear() {
	s.keys = s.keys[:0]
	s.pos.Clear()
}

// Spec returns UniformSpec().
func (s *Uniform) Spec() Spec { return UniformSpec() }
