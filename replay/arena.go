package replay

import (
	"fmt"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/table"
)

// decodeArena decodes the repeated parts of one message (chunks, their
// column specs, trajectories, table names) with a few allocations per
// message instead of several per item: records are carved out of slices
// sized for the whole message, and column specs and names that repeat from
// one chunk or item to the next are shared. Everything it returns is
// immutable, so sharing is safe; the records of one message live as long as
// any of them is referenced, as the message buffer their payloads alias
// does.
type decodeArena struct {
	chunks  []table.Chunk
	columns []table.TrajectoryColumn
	slices  []table.ChunkSlice

	lastSpecs []table.ColumnSpec
	lastName  string
}

// take returns the next n records of *pool, allocating a new block of at
// least min(n, hint) when it runs out.
func take[T any](pool *[]T, n, hint int) []T {
	if len(*pool) < n {
		*pool = make([]T, max(n, hint))
	}
	out := (*pool)[:n:n]
	*pool = (*pool)[n:]
	return out
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

// chunk decodes a chunk record; its Data aliases buf.
func (a *decodeArena) chunk(buf []byte, w *wire.Chunk, remaining int) (*table.Chunk, error) {
	c := &take(&a.chunks, 1, remaining)[0]
	*c = table.Chunk{Key: w.Key(), EpisodeID: w.EpisodeId(), Start: w.Start(), Length: w.Length(), Data: w.DataBytes()}
	if c.Length <= 0 {
		return nil, fmt.Errorf("%w: chunk %d has length %d", errMalformed, c.Key, c.Length)
	}
	cols, err := a.columnSpecs(buf, w)
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", c.Key, err)
	}
	c.Columns = cols
	return c, nil
}

// trajectory decodes an item's trajectory; hint sizes new blocks (about
// the columns left in the message).
func (a *decodeArena) trajectory(buf []byte, w *wire.Item, hint int) ([]table.TrajectoryColumn, error) {
	n := w.TrajectoryLength()
	if err := checkLen(buf, n, 4, "trajectory"); err != nil {
		return nil, err
	}
	out := take(&a.columns, n, hint)
	var col wire.TrajectoryColumn
	var sl wire.ChunkSlice
	for i := range out {
		if !w.Trajectory(&col, i) {
			return nil, fmt.Errorf("%w: trajectory column %d unreadable", errMalformed, i)
		}
		sn := col.SlicesLength()
		if err := checkLen(buf, sn, 20, "chunk slices"); err != nil {
			return nil, err
		}
		slices := take(&a.slices, sn, hint)
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
