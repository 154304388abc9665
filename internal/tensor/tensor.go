// Package tensor defines the small dense tensor type shared by the replay
// wire format, the chunk codec and the courier codec.
//
// A Tensor is a dtype, a shape and the little-endian bytes of its elements in
// row-major order. It deliberately has no arithmetic: it is a container for
// moving numeric data between processes without copying more than needed.
//
// The replay package re-exports this type as replay.Tensor.
package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// DType is the element type of a tensor.
type DType uint8

// The supported element types. The numeric values are part of the wire
// format and must never change.
const (
	Invalid DType = iota
	Uint8
	Int8
	Int16
	Int32
	Int64
	Uint16
	Uint32
	Uint64
	Float32
	Float64
	Bool
)

var dtypeInfo = [...]struct {
	name string
	size int
}{
	Invalid: {"invalid", 0},
	Uint8:   {"uint8", 1},
	Int8:    {"int8", 1},
	Int16:   {"int16", 2},
	Int32:   {"int32", 4},
	Int64:   {"int64", 8},
	Uint16:  {"uint16", 2},
	Uint32:  {"uint32", 4},
	Uint64:  {"uint64", 8},
	Float32: {"float32", 4},
	Float64: {"float64", 8},
	Bool:    {"bool", 1},
}

// ErrInvalid is returned (wrapped) when a tensor's dtype, shape and data do
// not agree.
var ErrInvalid = errors.New("tensor: invalid tensor")

// Valid reports whether d is a known dtype.
func (d DType) Valid() bool { return d > Invalid && int(d) < len(dtypeInfo) }

// Size returns the size in bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	if !d.Valid() {
		return 0
	}
	return dtypeInfo[d].size
}

// IsInteger reports whether d is a signed or unsigned integer type.
func (d DType) IsInteger() bool {
	switch d {
	case Uint8, Int8, Int16, Int32, Int64, Uint16, Uint32, Uint64:
		return true
	}
	return false
}

// String returns the dtype's name, e.g. "float32".
func (d DType) String() string {
	if int(d) < len(dtypeInfo) {
		return dtypeInfo[d].name
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// ParseDType returns the dtype called name (as printed by String).
func ParseDType(name string) (DType, error) {
	for i := range dtypeInfo {
		if DType(i).Valid() && dtypeInfo[i].name == name {
			return DType(i), nil
		}
	}
	return Invalid, fmt.Errorf("tensor: unknown dtype %q", name)
}

// Tensor is a dense, row-major array of one dtype. Data holds the elements in
// little-endian byte order; len(Data) must equal NumElements()*DType.Size().
// A Tensor with an empty Shape is a scalar holding one element.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape's dimensions. It is only
// meaningful for a shape that passes Validate (it may overflow otherwise).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// MaxElements is the largest number of elements a valid tensor may hold, and
// the largest value of any one dimension.
const MaxElements = math.MaxInt32

// Validate checks that the dtype is known, no dimension is negative, the
// number of elements is at most MaxElements and the data length matches the
// shape.
func (t Tensor) Validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("%w: unknown dtype %d", ErrInvalid, uint8(t.DType))
	}
	n, err := CheckShape(t.Shape)
	if err != nil {
		return err
	}
	if want := n * t.DType.Size(); len(t.Data) != want {
		return fmt.Errorf("%w: %s%v needs %d bytes, has %d", ErrInvalid, t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

// CheckShape returns the number of elements of shape, or an error wrapping
// ErrInvalid if a dimension is negative or larger than MaxElements, or the
// product is larger than MaxElements. The result does not depend on the
// order of the dimensions: a shape with a zero dimension holds no elements
// but its other dimensions must still be in range.
func CheckShape(shape []int) (int, error) {
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: dimension %d is negative (%d)", ErrInvalid, i, d)
		}
		if d > MaxElements {
			return 0, fmt.Errorf("%w: dimension %d is too large (%d)", ErrInvalid, i, d)
		}
	}
	n := 1
	for _, d := range shape {
		if d == 0 {
			return 0, nil
		}
		if n > MaxElements/d {
			return 0, fmt.Errorf("%w: shape %v is too large", ErrInvalid, shape)
		}
		n *= d
	}
	return n, nil
}

// Equal reports whether t and u have the same dtype, shape and bytes.
func (t Tensor) Equal(u Tensor) bool {
	if t.DType != u.DType || len(t.Shape) != len(u.Shape) || string(t.Data) != string(u.Data) {
		return false
	}
	for i := range t.Shape {
		if t.Shape[i] != u.Shape[i] {
			return false
		}
	}
	return true
}

// Element is the set of Go types a Tensor can be built from and read into.
type Element interface {
	~uint8 | ~int8 | ~int16 | ~int32 | ~int64 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64 | ~bool
}

// DTypeOf returns the dtype that corresponds to the Go type E.
func DTypeOf[E Element]() DType {
	var z E
	switch any(z).(type) {
	case uint8:
		return Uint8
	case int8:
		return Int8
	case int16:
		return Int16
	case int32:
		return Int32
	case int64:
		return Int64
	case uint16:
		return Uint16
	case uint32:
		return Uint32
	case uint64:
		return Uint64
	case float32:
		return Float32
	case float64:
		return Float64
	case bool:
		return Bool
	}
	// Named types with a supported underlying type: fall back on size and kind.
	return dtypeFromReflect(any(z))
}

// FromSlice builds a tensor of the given shape from values. With no shape the
// tensor is one-dimensional with len(values) elements. The data is copied.
// It fails if the shape is invalid (see Validate) or does not hold exactly
// len(values) elements.
func FromSlice[E Element](values []E, shape ...int) (Tensor, error) {
	dt := DTypeOf[E]()
	if shape == nil {
		shape = []int{len(values)}
	}
	n, err := CheckShape(shape)
	if err != nil {
		return Tensor{}, err
	}
	if n != len(values) {
		return Tensor{}, fmt.Errorf("%w: shape %v holds %d elements, got %d values", ErrInvalid, shape, n, len(values))
	}
	t := Tensor{DType: dt, Shape: slices.Clone(shape), Data: make([]byte, len(values)*dt.Size())}
	encode(t.Data, values)
	return t, nil
}

// MustFromSlice is FromSlice for shapes known to be right; it panics on error.
func MustFromSlice[E Element](values []E, shape ...int) Tensor {
	t, err := FromSlice(values, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

// Scalar returns a rank-0 tensor holding v.
func Scalar[E Element](v E) Tensor { return MustFromSlice([]E{v}, []int{}...) }

// ToSlice returns a copy of t's elements as a []E. It fails if E does not
// match t's dtype or the tensor is malformed.
func ToSlice[E Element](t Tensor) ([]E, error) {
	if dt := DTypeOf[E](); dt != t.DType {
		return nil, fmt.Errorf("%w: tensor is %s, not %s", ErrInvalid, t.DType, dt)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	out := make([]E, t.NumElements())
	decode(out, t.Data)
	return out, nil
}

// encode writes values into dst in little-endian order.
func encode[E Element](dst []byte, values []E) {
	if len(values) == 0 {
		return
	}
	size := int(unsafe.Sizeof(values[0]))
	if nativeLittleEndian {
		copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(&values[0])), len(values)*size))
		return
	}
	for i, v := range values {
		putElement(dst[i*size:], v)
	}
}

// decode reads little-endian elements from src into out.
func decode[E Element](out []E, src []byte) {
	if len(out) == 0 {
		return
	}
	size := int(unsafe.Sizeof(out[0]))
	if nativeLittleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*size), src)
		if DTypeOf[E]() == Bool {
			// Normalise any non-zero byte to true so the bool invariant holds.
			for i, b := range src[:len(out)] {
				if b > 1 {
					*(*uint8)(unsafe.Pointer(&out[i])) = 1
				}
			}
		}
		return
	}
	for i := range out {
		out[i] = getElement[E](src[i*size:])
	}
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// putElement writes v to dst in little-endian order. Only the size matters:
// a bool's byte is already 0 or 1, and a float is written by its IEEE bits.
func putElement[E Element](dst []byte, v E) {
	switch unsafe.Sizeof(v) {
	case 1:
		dst[0] = *(*uint8)(unsafe.Pointer(&v))
	case 2:
		binary.LittleEndian.PutUint16(dst, *(*uint16)(unsafe.Pointer(&v)))
	case 4:
		binary.LittleEndian.PutUint32(dst, *(*uint32)(unsafe.Pointer(&v)))
	case 8:
		binary.LittleEndian.PutUint64(dst, *(*uint64)(unsafe.Pointer(&v)))
	}
}

// getElement reads a little-endian element from src, normalising a bool's
// non-zero byte to true.
func getElement[E Element](src []byte) E {
	var v E
	switch unsafe.Sizeof(v) {
	case 1:
		b := src[0]
		if DTypeOf[E]() == Bool && b > 1 {
			b = 1
		}
		*(*uint8)(unsafe.Pointer(&v)) = b
	case 2:
		*(*uint16)(unsafe.Pointer(&v)) = binary.LittleEndian.Uint16(src)
	case 4:
		*(*uint32)(unsafe.Pointer(&v)) = binary.LittleEndian.Uint32(src)
	case 8:
		*(*uint64)(unsafe.Pointer(&v)) = binary.LittleEndian.Uint64(src)
	}
	return v
}
