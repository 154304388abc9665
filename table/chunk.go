package table

import (
	"fmt"
	"sync/atomic"

	"github.com/recall-rl/recall/internal/tensor"
)

// ColumnSpec describes one column of a chunk or of a table signature: a
// name, a dtype and the shape of a single step. In a signature a dimension
// of -1 matches any size.
type ColumnSpec struct {
	Name  string       `json:"name,omitempty"`
	DType tensor.DType `json:"dtype"`
	Shape []int        `json:"shape"`
}

// Chunk is a run of consecutive steps of one episode for one or more
// columns. Its Data is opaque to tables: clients compress and decompress it;
// the table only stores and returns it. A chunk must not be modified once
// handed to a ChunkStore.
type Chunk struct {
	Key       uint64
	EpisodeID uint64
	// Start is the index within the episode of the chunk's first step and
	// Length the number of steps it holds.
	Start  int64
	Length int32
	// Columns optionally describes the chunk's columns so that tables with a
	// signature can check items without decoding Data.
	Columns []ColumnSpec
	// Data is the encoded payload.
	Data []byte

	ref *ChunkRef // set by ChunkStore.Add: the store entry holding this chunk
}

// ChunkStore accounts for the chunks shared by items of any number of
// tables. Each chunk added is reference-counted: it counts as stored while
// a reference is held and leaves when the last one is released. The store
// keeps no index of its chunks (a hot path map would cost a cache miss per
// insert and evict): whoever needs a chunk by key (an insert stream, a
// checkpoint loader) holds its own map of references. A ChunkStore is safe
// for concurrent use.
type ChunkStore struct {
	count atomic.Int64
	bytes atomic.Int64
}

// NewChunkStore returns an empty store.
func NewChunkStore() *ChunkStore { return &ChunkStore{} }

// ChunkRef is a counted reference to a chunk in a ChunkStore. Every
// reference obtained from Add or Acquire must be given back with Release
// exactly once.
type ChunkRef struct {
	store *ChunkStore
	// chunk holds the chunk; as an array it doubles as the chunk list of an
	// item made of this one chunk, which thus needs no allocation of its own
	// (and no object for the garbage collector to trace per item).
	chunk [1]*Chunk
	refs  atomic.Int64
}

// Add stores c and returns the first reference to it. A chunk must be added
// once; share it by passing the reference (Acquire) rather than adding the
// same *Chunk again.
func (s *ChunkStore) Add(c *Chunk) *ChunkRef {
	r := &ChunkRef{store: s, chunk: [1]*Chunk{c}}
	c.ref = r
	r.refs.Store(1)
	s.count.Add(1)
	s.bytes.Add(int64(len(c.Data)))
	return r
}

// AddAll stores each chunk of cs as Add does and returns their first
// references, in order. The references share one allocation, which the
// garbage collector then traces as one object instead of one per chunk.
func (s *ChunkStore) AddAll(cs []*Chunk) []*ChunkRef {
	if len(cs) == 0 {
		return nil
	}
	block := make([]ChunkRef, len(cs))
	out := make([]*ChunkRef, len(cs))
	var bytes int64
	for i, c := range cs {
		r := &block[i]
		r.store, r.chunk[0] = s, c
		r.refs.Store(1)
		c.ref = r
		out[i] = r
		bytes += int64(len(c.Data))
	}
	s.count.Add(int64(len(cs)))
	s.bytes.Add(bytes)
	return out
}

// Len returns the number of chunks stored.
func (s *ChunkStore) Len() int64 { return s.count.Load() }

// Bytes returns the total payload size of the chunks stored.
func (s *ChunkStore) Bytes() int64 { return s.bytes.Load() }

// Chunk returns the referenced chunk. It stays valid (it is immutable and
// garbage collected) even after the reference is released.
func (r *ChunkRef) Chunk() *Chunk { return r.chunk[0] }

// Key returns the chunk's key.
func (r *ChunkRef) Key() uint64 { return r.chunk[0].Key }

// Acquire takes one more reference.
func (r *ChunkRef) Acquire() {
	if r.refs.Add(1) <= 1 {
		panic(fmt.Sprintf("table: Acquire of released chunk %d", r.chunk[0].Key))
	}
}

// Release gives back one reference; the chunk leaves its store when none
// remain.
func (r *ChunkRef) Release() {
	switch n := r.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic(fmt.Sprintf("table: chunk %d released more times than referenced", r.chunk[0].Key))
	}
	r.store.count.Add(-1)
	r.store.bytes.Add(-int64(len(r.chunk[0].Data)))
}
