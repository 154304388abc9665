package sampler

import (
	"errors"
	"fmt"
	"math"
)

// maxKeys is the most keys a selector holds; positions are stored as int32
// to keep per-key records small.
const maxKeys = math.MaxInt32

// errFull is returned by Insert when a selector already holds maxKeys keys.
var errFull = errors.New("sampler: selector is full")

// fullError reports that key could not be inserted because the selector is full.
func fullError(key uint64) error {
	return fmt.Errorf("%w: cannot insert key %d: %d keys held", errFull, key, maxKeys)
}

// existsError reports that key is already present.
func existsError(key uint64) error {
	return fmt.Errorf("%w: %d", ErrKeyExists, key)
}

// notFoundError reports that key is not present.
func notFoundError(key uint64) error {
	return fmt.Errorf("%w: %d", ErrKeyNotFound, key)
}
