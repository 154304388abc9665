package table

import (
	"fmt"
	"time"

	"github.com/recall-rl/recall/sampler"
)

// ChunkSlice selects Length consecutive steps, starting at Offset, of the
// column with index Index in the chunk ChunkKey.
type ChunkSlice struct {
	ChunkKey uint64 `json:"chunk_key"`
	Offset   int32  `json:"offset"`
	Length   int32  `json:"length"`
	Index    int32  `json:"index"`
}

// TrajectoryColumn is one column of an item: the concatenation of its
// slices. With Squeeze set the column has exactly one step and the step
// dimension is dropped when decoded.
type TrajectoryColumn struct {
	Slices  []ChunkSlice `json:"slices"`
	Squeeze bool         `json:"squeeze,omitempty"`
}

// Item is what is inserted into a table: a client-chosen key, a priority and
// a trajectory made of slices of chunks.
type Item struct {
	Key        uint64
	Priority   float64
	Trajectory []TrajectoryColumn
	// Chunks holds a reference to every chunk the trajectory uses (each once).
	// The table takes references of its own on a successful insert; the
	// caller keeps and releases the ones it passed.
	Chunks []*ChunkRef
}

// SampleInfo describes one sampled item.
type SampleInfo struct {
	Key      uint64
	Priority float64
	// Probability is the chance the sampler had of picking this item.
	Probability float64
	// TimesSampled counts samples of the item, this one included.
	TimesSampled int32
	// TableSize is the table size when the item was sampled.
	TableSize int64
	// InsertedAt is when the item was first inserted.
	InsertedAt time.Time
	// RateLimited is true if the call had to wait for the rate limiter.
	RateLimited bool
}

// Sampled is one result of Table.Sample: the item's info, its trajectory and
// the chunks it references. The trajectory and chunk slices are shared with
// the table and other samples and must not be modified.
type Sampled struct {
	Info       SampleInfo
	Trajectory []TrajectoryColumn
	Chunks     []*Chunk
}

// item is a table's record of an inserted Item.
type item struct {
	key          uint64
	slot         int32 // where the record lives; the selectors' key
	priority     float64
	timesSampled int32
	seq          uint64 // insertion order
	insertedAt   int64  // unix nanoseconds
	trajectory   []TrajectoryColumn
	// chunks holds the chunks the item references (the table owns one
	// reference to each). It is shared read-only with samples.
	chunks []*Chunk
}

// validPriority reports an error for a priority the selectors would refuse
// (NaN, infinite or negative), as a table error.
func validPriority(key uint64, p float64) error {
	if !sampler.ValidPriority(p) {
		return fmt.Errorf("%w: item %d has priority %v (must be finite and >= 0)", ErrInvalidPriority, key, p)
	}
	return nil
}

// validateItem checks an item's shape: a priority that is a number >= 0, a
// non-empty trajectory whose every slice points inside a chunk the item
// carries, and, when the table has one, agreement with the signature.
func validateItem(it *Item, sig *Signature) error {
	if err := validPriority(it.Key, it.Priority); err != nil {
		return err
	}
	if len(it.Trajectory) == 0 {
		return fmt.Errorf("%w: item %d has an empty trajectory", ErrInvalidItem, it.Key)
	}
	if len(it.Chunks) == 0 {
		return fmt.Errorf("%w: item %d references no chunks", ErrInvalidItem, it.Key)
	}
	find := func(key uint64) *Chunk {
		for _, r := range it.Chunks {
			if r.chunk[0].Key == key {
				return r.chunk[0]
			}
		}
		return nil
	}
	if sig != nil && len(sig.Columns) != len(it.Trajectory) {
		return fmt.Errorf("%w: item %d has %d columns, signature has %d", ErrSignatureMismatch, it.Key, len(it.Trajectory), len(sig.Columns))
	}
	for ci, col := range it.Trajectory {
		if len(col.Slices) == 0 {
			return fmt.Errorf("%w: item %d column %d has no slices", ErrInvalidItem, it.Key, ci)
		}
		steps := int64(0)
		for si, s := range col.Slices {
			c := find(s.ChunkKey)
			if c == nil {
				return fmt.Errorf("%w: item %d column %d slice %d references chunk %d, which the item does not carry", ErrInvalidItem, it.Key, ci, si, s.ChunkKey)
			}
			if s.Offset < 0 || s.Length <= 0 || int64(s.Offset)+int64(s.Length) > int64(c.Length) {
				return fmt.Errorf("%w: item %d column %d slice %d selects steps [%d, %d) of chunk %d, which has %d", ErrInvalidItem, it.Key, ci, si, s.Offset, int64(s.Offset)+int64(s.Length), c.Key, c.Length)
			}
			if s.Index < 0 || (len(c.Columns) > 0 && int(s.Index) >= len(c.Columns)) {
				return fmt.Errorf("%w: item %d column %d slice %d uses column %d of chunk %d, which has %d", ErrInvalidItem, it.Key, ci, si, s.Index, c.Key, len(c.Columns))
			}
			if sig != nil {
				if err := sig.check(ci, c, s); err != nil {
					return fmt.Errorf("%w: item %d: %v", ErrSignatureMismatch, it.Key, err)
				}
			}
			steps += int64(s.Length)
		}
		if col.Squeeze && steps != 1 {
			return fmt.Errorf("%w: item %d column %d is squeezed but has %d steps", ErrInvalidItem, it.Key, ci, steps)
		}
	}
	for i, r := range it.Chunks {
		for _, q := range it.Chunks[:i] {
			if q.chunk[0].Key == r.chunk[0].Key {
				return fmt.Errorf("%w: item %d lists chunk %d twice", ErrInvalidItem, it.Key, r.chunk[0].Key)
			}
		}
	}
	return nil
}
