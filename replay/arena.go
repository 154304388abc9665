package replay

import (
	"fmt"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/table"
)

// decodeArena decodes the repeated parts of a message (chunks, their
// column specs, trajectories, table names) with a few allocations per
// message instead of several per item: records are carved out of blocks
// sized for the whole message, and column specs and names that repeat from
// one chunk or item to the next are shared. Everything it returns is
// immutable, so sharing is safe; the records of one message live as long as
// any of them is referenced, as the message buffer their payloads alias
// does.
//
// The insert path uses a fresh arena per request (the table keeps what it
// returns); the sample decoder keeps one and rewinds its trajectory blocks
// for every sample, since it keeps nothing of a trajectory once its
// columns are assembled.
type decodeArena struct {
	chunks  block[table.Chunk]
	columns block[table.TrajectoryColumn]
	slices  block[table.ChunkSlice]

	lastSpecs []table.ColumnSpec
	lastName  string
	// col is trajectory's scratch (passed to a function value, a local
	// would escape to the heap on every call). It points into the last
	// message: an arena kept across messages must clear it.
	col wire.TrajectoryColumn
}

// block hands out small slices carved from one shared allocation.
type block[T any] struct {
	buf   []T
	used  int // of buf
	taken int // since the last rewind, across buffers
}

// take returns the next n records, allocating a new buffer of
// max(n, hint) records when the current one runs out.
func (b *block[T]) take(n, hint int) []T {
	if len(b.buf)-b.used < n {
		b.buf, b.used = make([]T, max(n, hint)), 0
	}
	out := b.buf[b.used : b.used+n : b.used+n]
	b.used += n
	b.taken += n
	return out
}

// rewind makes the buffer available again from its start, grown to hold
// everything taken since the last rewind: none of it may still be in use.
func (b *block[T]) rewind() {
	if b.taken > len(b.buf) {
		b.buf = make([]T, b.taken)
	}
	b.used, b.taken = 0, 0
}

// name returns b as a string, reusing the previous one when equal.
func (a *decodeArena) name(b []byte) string {
	if string(b) != a.lastName {
		a.lastName = string(b)
	}
	return a.lastName
}

// columnSpecs decodes a chunk's column specs, sharing the previous chunk's
// when they are the same (the usual case: a writer's chunks of one column).
func (a *decodeArena) columnSpecs(buf []byte, w *wire.Chunk) ([]table.ColumnSpec, error) {
	n := w.ColumnsLength()
	if n == 0 {
		return nil, nil
	}
	if err := checkLen(buf, n, 4, "column list"); err != nil {
		return nil, err
	}
	var c wire.ColumnSpec
	if len(a.lastSpecs) == n {
		same := true
		for i := 0; same && i < n; i++ {
			if !w.Columns(&c, i) {
				return nil, fmt.Errorf("%w: column %d unreadable", errMalformed, i)
			}
			prev := &a.lastSpecs[i]
			same = string(c.Name()) == prev.Name && tensor.DType(c.Dtype()) == prev.DType && c.ShapeLength() == len(prev.Shape)
			for j := 0; same && j < len(prev.Shape); j++ {
				same = int(c.Shape(j)) == prev.Shape[j]
			}
		}
		if same {
			return a.lastSpecs, nil
		}
	}
	specs, err := parseColumnSpecs(buf, n, w.Columns)
	if err != nil {
		return nil, err
	}
	a.lastSpecs = specs
	return specs, nil
}

// readChunk reads a chunk's fields but its column specs; Data aliases the
// message buffer.
func readChunk(w *wire.Chunk) (table.Chunk, error) {
	data := w.DataBytes()
	c := table.Chunk{Key: w.Key(), EpisodeID: w.EpisodeId(), Start: w.Start(), Length: w.Length(), Data: data[:len(data):len(data)]}
	if c.Length <= 0 {
		return c, fmt.Errorf("%w: chunk %d has length %d", errMalformed, c.Key, c.Length)
	}
	return c, nil
}

// chunk decodes a chunk record with its column specs; its Data aliases
// buf. hint sizes a new block (about the chunks left in the message).
func (a *decodeArena) chunk(buf []byte, w *wire.Chunk, hint int) (*table.Chunk, error) {
	c := &a.chunks.take(1, hint)[0]
	var err error
	if *c, err = readChunk(w); err != nil {
		return nil, err
	}
	if c.Columns, err = a.columnSpecs(buf, w); err != nil {
		return nil, fmt.Errorf("chunk %d: %w", c.Key, err)
	}
	return c, nil
}

// trajectory decodes a trajectory of n columns, read with get (an Item's
// or a SampledItem's Trajectory method); hint sizes new blocks (about the
// columns left in the message).
func (a *decodeArena) trajectory(buf []byte, n int, get func(*wire.TrajectoryColumn, int) bool, hint int) ([]table.TrajectoryColumn, error) {
	if err := checkLen(buf, n, 4, "trajectory"); err != nil {
		return nil, err
	}
	out := a.columns.take(n, hint)
	col := &a.col
	var sl wire.ChunkSlice
	for i := range out {
		if !get(col, i) {
			return nil, fmt.Errorf("%w: trajectory column %d unreadable", errMalformed, i)
		}
		sn := col.SlicesLength()
		if err := checkLen(buf, sn, 20, "chunk slices"); err != nil {
			return nil, err
		}
		slices := a.slices.take(sn, hint)
		for j := range slices {
			if !col.Slices(&sl, j) {
				return nil, fmt.Errorf("%w: slice %d unreadable", errMalformed, j)
			}
			slices[j] = table.ChunkSlice{ChunkKey: sl.ChunkKey(), Offset: sl.Offset(), Length: sl.Length(), Index: sl.Index()}
		}
		out[i] = table.TrajectoryColumn{Slices: slices, Squeeze: col.Squeeze()}
	}
	return out, nil
}
