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

// decodedChunks decodes each chunk of a response once, however many samples
// use it.
type decodedChunks map[uint64]*chunkcodec.Chunk

func (d decodedChunks) get(c *table.Chunk) (*chunkcodec.Chunk, error) {
	if dc, ok := d[c.Key]; ok {
		return dc, nil
	}
	dc, err := chunkcodec.Decode(c.Data)
	if err != nil {
		return nil, fmt.Errorf("replay: chunk %d: %w", c.Key, err)
	}
	d[c.Key] = dc
	return dc, nil
}

// assemble builds an item's columns from decoded chunks: each column is the
// concatenation of its slices along the step axis, squeezed to a single
// step when the column says so. Column names come from the chunks.
func assemble(s *table.Sampled, dec decodedChunks) (cols []Tensor, names []string, err error) {
	byKey := make(map[uint64]*table.Chunk, len(s.Chunks))
	for _, c := range s.Chunks {
		byKey[c.Key] = c
	}
	cols = make([]Tensor, len(s.Trajectory))
	names = make([]string, len(s.Trajectory))
	for ci, col := range s.Trajectory {
		var (
			out       Tensor
			stepBytes int
			steps     int
		)
		for si, sl := range col.Slices {
			raw, ok := byKey[sl.ChunkKey]
			if !ok {
				return nil, nil, fmt.Errorf("%w: column %d uses chunk %d, which was not sent", ErrInvalidArgument, ci, sl.ChunkKey)
			}
			dc, err := dec.get(raw)
			if err != nil {
				return nil, nil, err
			}
			if int(sl.Index) >= dc.NumColumns() || int(sl.Offset)+int(sl.Length) > dc.NumSteps() {
				return nil, nil, fmt.Errorf("%w: column %d slice %d is outside chunk %d", ErrInvalidArgument, ci, si, sl.ChunkKey)
			}
			b := dc.Batched(int(sl.Index))
			info := dc.Info(int(sl.Index))
			sb := info.DType.Size()
			for _, d := range info.Shape {
				sb *= d
			}
			if si == 0 {
				names[ci] = info.Name
				out = Tensor{DType: info.DType, Shape: append([]int{0}, info.Shape...)}
				stepBytes = sb
				if len(col.Slices) == 1 {
					// One slice: share the decoded buffer instead of copying.
					out.Data = b.Data[int(sl.Offset)*sb : (int(sl.Offset)+int(sl.Length))*sb]
					steps = int(sl.Length)
					break
				}
			} else if info.DType != out.DType || sb != stepBytes {
				return nil, nil, fmt.Errorf("%w: column %d mixes %s%v and %s%v", ErrInvalidArgument, ci, out.DType, out.Shape[1:], info.DType, info.Shape)
			}
			out.Data = append(out.Data, b.Data[int(sl.Offset)*sb:(int(sl.Offset)+int(sl.Length))*sb]...)
			steps += int(sl.Length)
		}
		out.Shape[0] = steps
		if col.Squeeze {
			out.Shape = out.Shape[1:]
		}
		cols[ci] = out
	}
	return cols, names, nil
}
