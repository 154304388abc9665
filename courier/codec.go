package courier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/recall-rl/recall/internal/tensor"
)

// ErrUnsupportedType is returned (wrapped) when a Go type cannot be encoded:
// interfaces, channels, functions, unsafe pointers, uintptr, recursive types,
// arrays longer than 1<<24 elements and structs whose fields are all
// unexported (such as time.Time). The error names the type and the path to
// the offending part, e.g. "unsupported type main.Obs: field Extra
// (interface {}): interfaces are not supported (use a concrete type)".
var ErrUnsupportedType = errors.New("unsupported type")

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("courier: malformed message")

var (
	durationType = reflect.TypeFor[time.Duration]()
	tensorType   = reflect.TypeFor[tensor.Tensor]()
	errorType    = reflect.TypeFor[error]()
	contextType  = reflect.TypeFor[context.Context]()

	littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
)

// maxArrayLen bounds array lengths, both in Go types and in descriptors, so
// that no descriptor can make the decoder allocate or loop without bound.
const maxArrayLen = 1 << 24

// typeCodec is the compiled encoder and decoder of one Go type. It is built
// once per reflect.Type and cached; calls never walk the type again.
type typeCodec struct {
	typ reflect.Type
	// desc is the wire type descriptor (see doc.go), with struct field names.
	desc string
	// shape is desc without struct field names: two types are wire
	// compatible iff their shapes are equal.
	shape string
	// minSize is the fewest bytes any value of the type encodes to.
	minSize int
	// empty reports that values encode to zero bytes (struct{}, [0]T).
	empty bool
	// fixed reports that every value encodes to exactly minSize bytes;
	// otherwise size computes a value's encoded size.
	fixed bool
	size  func(v reflect.Value) int
	enc   func(e *encoder, v reflect.Value)
	// dec decodes into v, which is addressable and settable. It sets all of
	// v's encoded parts; fields skipped by the encoding are left as they are.
	dec func(d *decoder, v reflect.Value) error
}

// sizeOf returns the exact encoded size of v, so encoders allocate once.
func (c *typeCodec) sizeOf(v reflect.Value) int {
	if c.fixed {
		return c.minSize
	}
	return c.size(v)
}

// uvarintLen is the encoded size of x as a uvarint.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// lengthLen is the encoded size of a nil-marked length.
func lengthLen(n int, isNil bool) int {
	if isNil {
		return 1
	}
	return uvarintLen(uint64(n) + 1)
}

// encoder appends encoded values to buf. The first error sticks.
type encoder struct {
	buf []byte
	err error
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *encoder) uvarint(x uint64) { e.buf = binary.AppendUvarint(e.buf, x) }

// length writes a slice or map length with the nil marker: 0 for nil,
// otherwise n+1.
func (e *encoder) length(n int, isNil bool) {
	if isNil {
		e.buf = append(e.buf, 0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

// decoder reads from buf. It never panics: every read is bounds-checked and
// every length is capped by the bytes that remain.
type decoder struct {
	buf []byte
	off int
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
}

var errTruncated = malformed("truncated")

func (d *decoder) remaining() int { return len(d.buf) - d.off }

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, errTruncated
	}
	b := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.buf) {
		return 0, errTruncated
	}
	b := d.buf[d.off]
	d.off++
	return b, nil
}

func (d *decoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		if n == 0 {
			return 0, errTruncated
		}
		return 0, malformed("varint overflows 64 bits")
	}
	d.off += n
	return x, nil
}

// count reads a plain (non-nil-marked) length and checks that count elements
// of at least minElem bytes each can still follow.
func (d *decoder) count(minElem int) (int, error) {
	x, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if x > uint64(d.remaining()/max(minElem, 1)) {
		return 0, malformed("length %d exceeds the %d bytes left", x, d.remaining())
	}
	return int(x), nil
}

// length reads a nil-marked length written by encoder.length.
func (d *decoder) length(minElem int) (n int, isNil bool, err error) {
	x, err := d.uvarint()
	if err != nil {
		return 0, false, err
	}
	if x == 0 {
		return 0, true, nil
	}
	x--
	if x > uint64(d.remaining()/max(minElem, 1)) {
		return 0, false, malformed("length %d exceeds the %d bytes left", x, d.remaining())
	}
	return int(x), false, nil
}

// bytesField reads a nil-marked byte string. The result aliases the input
// with its capacity clipped, so appending to it never touches the input.
func (d *decoder) bytesField() ([]byte, error) {
	n, isNil, err := d.length(1)
	if err != nil || isNil {
		return nil, err
	}
	return d.take(n)
}

// codecCache maps reflect.Type to *typeCodec, or to the compileError of
// a type that cannot be encoded.
var codecCache sync.Map

// compileError is why a type cannot be encoded, relative to that type.
type compileError struct{ err error }

// codecFor returns the compiled codec of t.
func codecFor(t reflect.Type) (*typeCodec, error) {
	c, err := compile(t, nil)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrUnsupportedType, t, err)
	}
	return c, nil
}

// compile builds the codec of t. visiting holds the types being compiled on
// the current path, to reject recursive types.
func compile(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	if c, ok := codecCache.Load(t); ok {
		if tc, ok := c.(*typeCodec); ok {
			return tc, nil
		}
		return nil, c.(compileError).err
	}
	if visiting == nil {
		visiting = map[reflect.Type]bool{}
	}
	if visiting[t] {
		return nil, errors.New("recursive types are not supported")
	}
	visiting[t] = true
	defer delete(visiting, t)

	c, err := build(t, visiting)
	if err != nil {
		// Only the outermost failure is cached: inner types may be fine.
		if len(visiting) == 1 {
			codecCache.Store(t, compileError{err})
		}
		return nil, err
	}
	c.typ = t
	if c.shape == "" {
		c.shape = c.desc
	}
	actual, _ := codecCache.LoadOrStore(t, c)
	return actual.(*typeCodec), nil
}

func build(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	switch t {
	case durationType:
		return fixedInt("duration", 8), nil
	case tensorType:
		return tensorCodec(), nil
	}
	switch k := t.Kind(); k {
	case reflect.Bool:
		return &typeCodec{desc: "bool", minSize: 1, fixed: true, enc: encBool, dec: decBool}, nil
	case reflect.Int8:
		return fixedInt("int8", 1), nil
	case reflect.Int16:
		return fixedInt("int16", 2), nil
	case reflect.Int32:
		return fixedInt("int32", 4), nil
	case reflect.Int, reflect.Int64:
		return fixedInt("int64", 8), nil
	case reflect.Uint8:
		return fixedUint("uint8", 1), nil
	case reflect.Uint16:
		return fixedUint("uint16", 2), nil
	case reflect.Uint32:
		return fixedUint("uint32", 4), nil
	case reflect.Uint, reflect.Uint64:
		return fixedUint("uint64", 8), nil
	case reflect.Float32:
		return &typeCodec{desc: "float32", minSize: 4, fixed: true, enc: encFloat32, dec: decFloat32}, nil
	case reflect.Float64:
		return &typeCodec{desc: "float64", minSize: 8, fixed: true, enc: encFloat64, dec: decFloat64}, nil
	case reflect.Complex64:
		return &typeCodec{desc: "complex64", minSize: 8, fixed: true, enc: encComplex64, dec: decComplex64}, nil
	case reflect.Complex128:
		return &typeCodec{desc: "complex128", minSize: 16, fixed: true, enc: encComplex128, dec: decComplex128}, nil
	case reflect.String:
		return &typeCodec{desc: "string", minSize: 1, enc: encString, dec: decString, size: sizeString}, nil
	case reflect.Slice:
		return sliceCodec(t, visiting)
	case reflect.Array:
		return arrayCodec(t, visiting)
	case reflect.Map:
		return mapCodec(t, visiting)
	case reflect.Pointer:
		return pointerCodec(t, visiting)
	case reflect.Struct:
		return structCodec(t, visiting)
	case reflect.Interface:
		if t == contextType {
			return nil, errors.New("a context is only allowed as a method's first parameter")
		}
		return nil, errors.New("interfaces are not supported (use a concrete type)")
	case reflect.Chan:
		return nil, errors.New("channels are not supported")
	case reflect.Func:
		return nil, errors.New("functions are not supported")
	default:
		return nil, fmt.Errorf("kind %s is not supported", k)
	}
}

// Scalars. Every number is fixed-width little-endian on the wire.

func encBool(e *encoder, v reflect.Value) {
	if v.Bool() {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

func decBool(d *decoder, v reflect.Value) error {
	b, err := d.byte()
	if err != nil {
		return err
	}
	if b > 1 {
		return malformed("bool byte is %d", b)
	}
	v.SetBool(b == 1)
	return nil
}

func appendFixed(buf []byte, x uint64, size int) []byte {
	switch size {
	case 1:
		return append(buf, byte(x))
	case 2:
		return binary.LittleEndian.AppendUint16(buf, uint16(x))
	case 4:
		return binary.LittleEndian.AppendUint32(buf, uint32(x))
	default:
		return binary.LittleEndian.AppendUint64(buf, x)
	}
}

func readFixed(d *decoder, size int) (uint64, error) {
	b, err := d.take(size)
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.LittleEndian.Uint32(b)), nil
	default:
		return binary.LittleEndian.Uint64(b), nil
	}
}

func fixedInt(desc string, size int) *typeCodec {
	shift := 64 - 8*size
	return &typeCodec{
		desc: desc, minSize: size, fixed: true,
		enc: func(e *encoder, v reflect.Value) { e.buf = appendFixed(e.buf, uint64(v.Int()), size) },
		dec: func(d *decoder, v reflect.Value) error {
			u, err := readFixed(d, size)
			if err != nil {
				return err
			}
			x := int64(u<<shift) >> shift // sign-extend
			if v.OverflowInt(x) {
				return malformed("%d overflows %s", x, v.Type())
			}
			v.SetInt(x)
			return nil
		},
	}
}

func fixedUint(desc string, size int) *typeCodec {
	return &typeCodec{
		desc: desc, minSize: size, fixed: true,
		enc: func(e *encoder, v reflect.Value) { e.buf = appendFixed(e.buf, v.Uint(), size) },
		dec: func(d *decoder, v reflect.Value) error {
			x, err := readFixed(d, size)
			if err != nil {
				return err
			}
			if v.OverflowUint(x) {
				return malformed("%d overflows %s", x, v.Type())
			}
			v.SetUint(x)
			return nil
		},
	}
}

func encFloat32(e *encoder, v reflect.Value) {
	e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(float32(v.Float())))
}

func decFloat32(d *decoder, v reflect.Value) error {
	x, err := readFixed(d, 4)
	if err != nil {
		return err
	}
	v.SetFloat(float64(math.Float32frombits(uint32(x))))
	return nil
}

func encFloat64(e *encoder, v reflect.Value) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v.Float()))
}

func decFloat64(d *decoder, v reflect.Value) error {
	x, err := readFixed(d, 8)
	if err != nil {
		return err
	}
	v.SetFloat(math.Float64frombits(x))
	return nil
}

func encComplex64(e *encoder, v reflect.Value) {
	c := v.Complex()
	e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(float32(real(c))))
	e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(float32(imag(c))))
}

func decComplex64(d *decoder, v reflect.Value) error {
	b, err := d.take(8)
	if err != nil {
		return err
	}
	re := math.Float32frombits(binary.LittleEndian.Uint32(b))
	im := math.Float32frombits(binary.LittleEndian.Uint32(b[4:]))
	v.SetComplex(complex(float64(re), float64(im)))
	return nil
}

func encComplex128(e *encoder, v reflect.Value) {
	c := v.Complex()
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(real(c)))
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(imag(c)))
}

func decComplex128(d *decoder, v reflect.Value) error {
	b, err := d.take(16)
	if err != nil {
		return err
	}
	re := math.Float64frombits(binary.LittleEndian.Uint64(b))
	im := math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	v.SetComplex(complex(re, im))
	return nil
}

func encString(e *encoder, v reflect.Value) {
	s := v.String()
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func sizeString(v reflect.Value) int {
	n := v.Len()
	return uvarintLen(uint64(n)) + n
}

func decString(d *decoder, v reflect.Value) error {
	n, err := d.count(1)
	if err != nil {
		return err
	}
	b, err := d.take(n)
	if err != nil {
		return err
	}
	v.SetString(string(b))
	return nil
}

// rawElemSize returns the wire size of t's elements when a sequence of them
// can be copied as raw memory (fixed-width numbers and bools on a
// little-endian host whose in-memory size matches the wire size), or 0.
func rawElemSize(elem reflect.Type) int {
	if !littleEndian || elem == tensorType {
		return 0
	}
	var wire int
	switch elem.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		wire = 1
	case reflect.Int16, reflect.Uint16:
		wire = 2
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		wire = 4
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Float64, reflect.Complex64:
		wire = 8
	case reflect.Complex128:
		wire = 16
	default:
		return 0
	}
	if int(elem.Size()) != wire {
		return 0 // int and uint on 32-bit hosts
	}
	return wire
}

// checkBools rejects bool bytes other than 0 and 1.
func checkBools(b []byte) error {
	for _, x := range b {
		if x > 1 {
			return malformed("bool byte is %d", x)
		}
	}
	return nil
}

func sliceCodec(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	ec, err := compile(t.Elem(), visiting)
	if err != nil {
		return nil, fmt.Errorf("element (%s): %w", t.Elem(), err)
	}
	c := &typeCodec{desc: "[]" + ec.desc, shape: "[]" + ec.shape, minSize: 1}
	isBool := t.Elem().Kind() == reflect.Bool
	isByte := t.Elem().Kind() == reflect.Uint8
	if size := rawElemSize(t.Elem()); size > 0 {
		c.size = func(v reflect.Value) int {
			n := v.Len()
			return lengthLen(n, v.IsNil()) + n*size
		}
		c.enc = func(e *encoder, v reflect.Value) {
			if v.IsNil() {
				e.length(0, true)
				return
			}
			n := v.Len()
			e.length(n, false)
			if n > 0 {
				e.buf = append(e.buf, unsafe.Slice((*byte)(v.UnsafePointer()), n*size)...)
			}
		}
		c.dec = func(d *decoder, v reflect.Value) error {
			n, isNil, err := d.length(size)
			if err != nil {
				return err
			}
			if isNil {
				v.SetZero()
				return nil
			}
			b, err := d.take(n * size)
			if err != nil {
				return err
			}
			if isByte {
				v.SetBytes(b) // aliases the message; see doc.go
				return nil
			}
			if isBool {
				if err := checkBools(b); err != nil {
					return err
				}
			}
			s := reflect.MakeSlice(t, n, n)
			if n > 0 {
				copy(unsafe.Slice((*byte)(s.UnsafePointer()), n*size), b)
			}
			v.Set(s)
			return nil
		}
		return c, nil
	}
	c.size = func(v reflect.Value) int {
		n := v.Len()
		total := lengthLen(n, v.IsNil())
		if ec.fixed {
			return total + n*ec.minSize
		}
		for i := 0; i < n; i++ {
			total += ec.size(v.Index(i))
		}
		return total
	}
	c.enc = func(e *encoder, v reflect.Value) {
		if v.IsNil() {
			e.length(0, true)
			return
		}
		n := v.Len()
		e.length(n, false)
		for i := 0; i < n; i++ {
			ec.enc(e, v.Index(i))
		}
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, isNil, err := d.length(ec.minSize)
		if err != nil {
			return err
		}
		if isNil {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(t, n, n)
		if !ec.empty {
			for i := 0; i < n; i++ {
				if err := ec.dec(d, s.Index(i)); err != nil {
					return err
				}
			}
		}
		v.Set(s)
		return nil
	}
	return c, nil
}

func arrayCodec(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	n := t.Len()
	if n > maxArrayLen {
		return nil, fmt.Errorf("arrays longer than %d elements are not supported", maxArrayLen)
	}
	ec, err := compile(t.Elem(), visiting)
	if err != nil {
		return nil, fmt.Errorf("element (%s): %w", t.Elem(), err)
	}
	prefix := "[" + strconv.Itoa(n) + "]"
	c := &typeCodec{
		desc: prefix + ec.desc, shape: prefix + ec.shape,
		minSize: n * ec.minSize, empty: n == 0 || ec.empty, fixed: n == 0 || ec.fixed,
	}
	if !c.fixed {
		c.size = func(v reflect.Value) int {
			total := 0
			for i := 0; i < n; i++ {
				total += ec.size(v.Index(i))
			}
			return total
		}
	}
	if c.empty {
		c.enc = func(*encoder, reflect.Value) {}
		c.dec = func(*decoder, reflect.Value) error { return nil }
		return c, nil
	}
	size := rawElemSize(t.Elem())
	isBool := t.Elem().Kind() == reflect.Bool
	c.enc = func(e *encoder, v reflect.Value) {
		if size > 0 && v.CanAddr() {
			e.buf = append(e.buf, unsafe.Slice((*byte)(v.Addr().UnsafePointer()), n*size)...)
			return
		}
		for i := 0; i < n; i++ {
			ec.enc(e, v.Index(i))
		}
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		if size > 0 && v.CanAddr() {
			b, err := d.take(n * size)
			if err != nil {
				return err
			}
			if isBool {
				if err := checkBools(b); err != nil {
					return err
				}
			}
			copy(unsafe.Slice((*byte)(v.Addr().UnsafePointer()), n*size), b)
			return nil
		}
		for i := 0; i < n; i++ {
			if err := ec.dec(d, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return c, nil
}

func mapCodec(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	kc, err := compile(t.Key(), visiting)
	if err != nil {
		return nil, fmt.Errorf("key (%s): %w", t.Key(), err)
	}
	vc, err := compile(t.Elem(), visiting)
	if err != nil {
		return nil, fmt.Errorf("value (%s): %w", t.Elem(), err)
	}
	c := &typeCodec{
		desc:    "map[" + kc.desc + "]" + vc.desc,
		shape:   "map[" + kc.shape + "]" + vc.shape,
		minSize: 1,
	}
	pairMin := kc.minSize + vc.minSize
	c.size = func(v reflect.Value) int {
		n := v.Len()
		total := lengthLen(n, v.IsNil())
		if kc.fixed && vc.fixed {
			return total + n*pairMin
		}
		k := reflect.New(t.Key()).Elem()
		x := reflect.New(t.Elem()).Elem()
		it := v.MapRange()
		for it.Next() {
			k.SetIterKey(it)
			x.SetIterValue(it)
			total += kc.sizeOf(k) + vc.sizeOf(x)
		}
		return total
	}
	c.enc = func(e *encoder, v reflect.Value) {
		if v.IsNil() {
			e.length(0, true)
			return
		}
		e.length(v.Len(), false)
		k := reflect.New(t.Key()).Elem()
		x := reflect.New(t.Elem()).Elem()
		it := v.MapRange()
		for it.Next() {
			k.SetIterKey(it)
			x.SetIterValue(it)
			kc.enc(e, k)
			vc.enc(e, x)
		}
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, isNil, err := d.length(pairMin)
		if err != nil {
			return err
		}
		if isNil {
			v.SetZero()
			return nil
		}
		m := reflect.MakeMapWithSize(t, n)
		k := reflect.New(t.Key()).Elem()
		x := reflect.New(t.Elem()).Elem()
		for i := 0; i < n; i++ {
			k.SetZero()
			x.SetZero()
			if err := kc.dec(d, k); err != nil {
				return err
			}
			if err := vc.dec(d, x); err != nil {
				return err
			}
			m.SetMapIndex(k, x)
			if m.Len() != i+1 {
				return malformed("duplicate map key")
			}
		}
		v.Set(m)
		return nil
	}
	return c, nil
}

func pointerCodec(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	ec, err := compile(t.Elem(), visiting)
	if err != nil {
		return nil, fmt.Errorf("element (%s): %w", t.Elem(), err)
	}
	return &typeCodec{
		desc: "*" + ec.desc, shape: "*" + ec.shape, minSize: 1,
		size: func(v reflect.Value) int {
			if v.IsNil() {
				return 1
			}
			return 1 + ec.sizeOf(v.Elem())
		},
		enc: func(e *encoder, v reflect.Value) {
			if v.IsNil() {
				e.buf = append(e.buf, 0)
				return
			}
			e.buf = append(e.buf, 1)
			ec.enc(e, v.Elem())
		},
		dec: func(d *decoder, v reflect.Value) error {
			tag, err := d.byte()
			if err != nil {
				return err
			}
			switch tag {
			case 0:
				v.SetZero()
				return nil
			case 1:
				p := reflect.New(t.Elem())
				if err := ec.dec(d, p.Elem()); err != nil {
					return err
				}
				v.Set(p)
				return nil
			}
			return malformed("pointer tag is %d", tag)
		},
	}, nil
}

type fieldCodec struct {
	index int
	c     *typeCodec
}

func structCodec(t reflect.Type, visiting map[reflect.Type]bool) (*typeCodec, error) {
	var (
		fields     []fieldCodec
		desc       strings.Builder
		shape      strings.Builder
		unexported int
		minSize    int
	)
	desc.WriteString("struct{")
	shape.WriteString("struct{")
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			unexported++
			continue
		}
		if f.Tag.Get("courier") == "-" {
			continue
		}
		fc, err := compile(f.Type, visiting)
		if err != nil {
			return nil, fmt.Errorf("field %s (%s): %w", f.Name, f.Type, err)
		}
		if len(fields) > 0 {
			desc.WriteString("; ")
			shape.WriteString("; ")
		}
		desc.WriteString(f.Name)
		desc.WriteByte(' ')
		desc.WriteString(fc.desc)
		shape.WriteString(fc.shape)
		fields = append(fields, fieldCodec{index: i, c: fc})
		minSize += fc.minSize
	}
	if len(fields) == 0 && unexported > 0 {
		return nil, errors.New("structs whose fields are all unexported are not supported")
	}
	desc.WriteByte('}')
	shape.WriteByte('}')
	c := &typeCodec{desc: desc.String(), shape: shape.String(), minSize: minSize, empty: true, fixed: true}
	var variable []fieldCodec
	fixedPart := 0
	for _, f := range fields {
		if !f.c.empty {
			c.empty = false
		}
		if f.c.fixed {
			fixedPart += f.c.minSize
		} else {
			c.fixed = false
			variable = append(variable, f)
		}
	}
	c.size = func(v reflect.Value) int {
		total := fixedPart
		for _, f := range variable {
			total += f.c.size(v.Field(f.index))
		}
		return total
	}
	c.enc = func(e *encoder, v reflect.Value) {
		for _, f := range fields {
			f.c.enc(e, v.Field(f.index))
		}
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		for _, f := range fields {
			if err := f.c.dec(d, v.Field(f.index)); err != nil {
				return err
			}
		}
		return nil
	}
	return c, nil
}

// tensorCodec encodes tensor.Tensor as its dtype byte, its shape and its raw
// data bytes. Only valid tensors and the zero Tensor travel.
func tensorCodec() *typeCodec {
	return &typeCodec{
		desc: "tensor", minSize: 3,
		size: func(v reflect.Value) int {
			shape, data := v.Field(1), v.Field(2)
			n := 1 + lengthLen(shape.Len(), shape.IsNil()) + lengthLen(data.Len(), data.IsNil()) + data.Len()
			for i := 0; i < shape.Len(); i++ {
				n += uvarintLen(uint64(shape.Index(i).Int()))
			}
			return n
		},
		enc: func(e *encoder, v reflect.Value) {
			var t tensor.Tensor
			if v.CanAddr() {
				t = *(*tensor.Tensor)(v.Addr().UnsafePointer())
			} else {
				t = v.Interface().(tensor.Tensor)
			}
			if err := checkTensor(t); err != nil {
				e.fail(err)
				return
			}
			e.buf = append(e.buf, byte(t.DType))
			e.length(len(t.Shape), t.Shape == nil)
			for _, dim := range t.Shape {
				e.uvarint(uint64(dim))
			}
			e.length(len(t.Data), t.Data == nil)
			e.buf = append(e.buf, t.Data...)
		},
		dec: func(d *decoder, v reflect.Value) error {
			var t tensor.Tensor
			dt, err := d.byte()
			if err != nil {
				return err
			}
			t.DType = tensor.DType(dt)
			rank, isNil, err := d.length(1)
			if err != nil {
				return err
			}
			if !isNil {
				t.Shape = make([]int, rank)
				for i := range t.Shape {
					x, err := d.uvarint()
					if err != nil {
						return err
					}
					if x > math.MaxInt32 {
						return malformed("tensor dimension %d is too large", x)
					}
					t.Shape[i] = int(x)
				}
			}
			if t.Data, err = d.bytesField(); err != nil {
				return err
			}
			if err := checkTensor(t); err != nil {
				return fmt.Errorf("%w: %w", errMalformed, err)
			}
			if v.CanAddr() {
				*(*tensor.Tensor)(v.Addr().UnsafePointer()) = t
			} else {
				v.Set(reflect.ValueOf(t))
			}
			return nil
		},
	}
}

// checkTensor accepts the zero Tensor (invalid dtype, no shape, no data) and
// valid tensors.
func checkTensor(t tensor.Tensor) error {
	if t.DType == tensor.Invalid && len(t.Shape) == 0 && len(t.Data) == 0 {
		return nil
	}
	return t.Validate()
}

// encodeValue encodes v with c and returns the bytes appended to buf.
func encodeValue(buf []byte, c *typeCodec, v reflect.Value) ([]byte, error) {
	e := encoder{buf: slices.Grow(buf, c.sizeOf(v))}
	c.enc(&e, v)
	return e.buf, e.err
}

// decodeValue decodes all of data into a new value of c's type.
func decodeValue(c *typeCodec, data []byte) (reflect.Value, error) {
	if len(data) < c.minSize {
		// Checked before allocating: a large array needs as many bytes.
		return reflect.Value{}, errTruncated
	}
	d := decoder{buf: data}
	v := reflect.New(c.typ).Elem()
	if err := c.dec(&d, v); err != nil {
		return reflect.Value{}, err
	}
	if d.remaining() != 0 {
		return reflect.Value{}, malformed("%d trailing bytes", d.remaining())
	}
	return v, nil
}
