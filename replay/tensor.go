package replay

import (
	"fmt"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/table"
)

// Tensor is a dense array: a dtype, a shape and little-endian bytes. Build
// one with FromSlice and read it with ToSlice.
type Tensor = tensor.Tensor

// DType is a tensor's element type.
type DType = tensor.DType

// Element types.
const (
	Uint8   = tensor.Uint8
	Int8    = tensor.Int8
	Int16   = tensor.Int16
	Int32   = tensor.Int32
	Int64   = tensor.Int64
	Uint16  = tensor.Uint16
	Uint32  = tensor.Uint32
	Uint64  = tensor.Uint64
	Float32 = tensor.Float32
	Float64 = tensor.Float64
	Bool    = tensor.Bool
)

// FromSlice builds a tensor from values with the given shape (a vector when
// no shape is given).
func FromSlice[E tensor.Element](values []E, shape ...int) (Tensor, error) {
	return tensor.FromSlice(values, shape...)
}

// ToSlice copies a tensor's elements into a new []E.
func ToSlice[E tensor.Element](t Tensor) ([]E, error) { return tensor.ToSlice[E](t) }

// Scalar returns a rank-0 tensor.
func Scalar[E tensor.Element](v E) Tensor { return tensor.Scalar(v) }

// SampleInfo describes a sampled item: key, priority, probability, times
// sampled (this sample included), table size, insertion time and whether
// the sample waited for the rate limiter.
type SampleInfo = table.SampleInfo

// chunkSource resolves the chunk keys of a sample's trajectory to decoded
// chunks: ok is false for a chunk that was not sent.
type chunkSource interface {
	chunk(key uint64) (dc *chunkcodec.Chunk, ok bool, err error)
}

// assembleColumns fills cols and names, of len(traj) each, with the
// columns of a trajectory: each column is the concatenation of its slices
// along the step axis, squeezed to a single step when the column says so.
// Column names come from the chunks. A column of one slice shares the
// decoded chunk's data; one of several slices is copied together. Shapes
// come from shapes.
func assembleColumns(traj []table.TrajectoryColumn, cols []Tensor, names []string, shapes *block[int], src chunkSource) error {
	for ci := range traj {
		col := &traj[ci]
		var (
			out       Tensor
			stepBytes int
			steps     int
		)
		for si, sl := range col.Slices {
			dc, ok, err := src.chunk(sl.ChunkKey)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: column %d uses chunk %d, which was not sent", ErrInvalidArgument, ci, sl.ChunkKey)
			}
			if sl.Index < 0 || int(sl.Index) >= dc.NumColumns() || sl.Offset < 0 || sl.Length < 0 || int(sl.Offset)+int(sl.Length) > dc.NumSteps() {
				return fmt.Errorf("%w: column %d slice %d is outside chunk %d", ErrInvalidArgument, ci, si, sl.ChunkKey)
			}
			b := dc.Batched(int(sl.Index))
			info := dc.Info(int(sl.Index))
			sb := info.DType.Size()
			for _, d := range info.Shape {
				sb *= d
			}
			part := b.Data[int(sl.Offset)*sb : (int(sl.Offset)+int(sl.Length))*sb]
			if si == 0 {
				names[ci] = info.Name
				shape := shapes.take(1+len(info.Shape), 64)
				copy(shape[1:], info.Shape)
				out = Tensor{DType: info.DType, Shape: shape}
				stepBytes = sb
				if len(col.Slices) == 1 {
					// One slice: share the decoded buffer instead of copying.
					out.Data = part
					steps = int(sl.Length)
					break
				}
				total := 0
				for _, s := range col.Slices {
					total += max(0, int(s.Length))
				}
				out.Data = make([]byte, 0, min(total, dc.NumSteps()*len(col.Slices))*sb)
			} else if info.DType != out.DType || sb != stepBytes {
				return fmt.Errorf("%w: column %d mixes %s%v and %s%v", ErrInvalidArgument, ci, out.DType, out.Shape[1:], info.DType, info.Shape)
			}
			out.Data = append(out.Data, part...)
			steps += int(sl.Length)
		}
		if len(col.Slices) == 0 {
			// No data: an empty column without a known dtype, as before.
			out.Shape = shapes.take(1, 64)
		}
		out.Shape[0] = steps
		if col.Squeeze {
			out.Shape = out.Shape[1:]
		}
		cols[ci] = out
	}
	return nil
}
