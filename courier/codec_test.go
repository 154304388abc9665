package courier

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/recall-rl/recall/internal/tensor"
)

type Reward float32

type Inner struct {
	ID   uint16
	Tags []string
}

type Outer struct {
	Name     string
	Inner    Inner
	Ptr      *Inner
	Scores   map[string]float64
	Grid     [2][3]int8
	Wait     time.Duration
	Obs      tensor.Tensor
	Rewards  []Reward
	Skipped  int `courier:"-"`
	internal int
	Nested   []map[int32]*[]bool
}

// Renamed has Inner's shape with other field names.
type Renamed struct {
	Key    uint16
	Labels []string
}

// Reordered has Inner's fields in another order.
type Reordered struct {
	Tags []string
	ID   uint16
}

func roundTrip[T any](t *testing.T, in T) (T, []byte) {
	t.Helper()
	c, err := codecFor(reflect.TypeFor[T]())
	if err != nil {
		t.Fatalf("codecFor(%T): %v", in, err)
	}
	data, err := encodeValue(nil, c, reflect.ValueOf(&in).Elem())
	if err != nil {
		t.Fatalf("encode %T: %v", in, err)
	}
	if size := c.sizeOf(reflect.ValueOf(&in).Elem()); size != len(data) {
		t.Fatalf("%T: sizeOf says %d bytes, encoding has %d", in, size, len(data))
	}
	if len(data) < c.minSize {
		t.Fatalf("%T encodes to %d bytes, below its minSize %d", in, len(data), c.minSize)
	}
	v, err := decodeValue(c, data)
	if err != nil {
		t.Fatalf("decode %T from %x: %v", in, data, err)
	}
	return v.Interface().(T), data
}

func checkRoundTrip[T any](t *testing.T, name, desc string, in T) {
	t.Run(name, func(t *testing.T) {
		c, err := codecFor(reflect.TypeFor[T]())
		if err != nil {
			t.Fatal(err)
		}
		if c.desc != desc {
			t.Errorf("descriptor = %q, want %q", c.desc, desc)
		}
		out, data := roundTrip(t, in)
		if !reflect.DeepEqual(out, in) {
			t.Errorf("round trip of %#v = %#v", in, out)
		}
		// An untyped decode (Call without a type) yields the same data.
		dc, err := codecForDesc(c.desc)
		if err != nil {
			t.Fatalf("codecForDesc(%q): %v", c.desc, err)
		}
		if dc.desc != c.desc {
			t.Errorf("type built from %q describes itself as %q", c.desc, dc.desc)
		}
		v, err := decodeValue(dc, data)
		if err != nil {
			t.Fatalf("untyped decode: %v", err)
		}
		again, err := encodeValue(nil, dc, v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(c.desc, "map[") && string(again) != string(data) {
			t.Errorf("untyped re-encoding differs:\n got %x\nwant %x", again, data)
		}
	})
}

func TestCodecRoundTrip(t *testing.T) {
	obs := tensor.MustFromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	x := int64(-7)
	bools := []bool{true, false}

	checkRoundTrip(t, "bool", "bool", true)
	checkRoundTrip(t, "int8", "int8", int8(-128))
	checkRoundTrip(t, "int16", "int16", int16(-12345))
	checkRoundTrip(t, "int32", "int32", int32(math.MinInt32))
	checkRoundTrip(t, "int64", "int64", int64(math.MaxInt64))
	checkRoundTrip(t, "int", "int64", -42)
	checkRoundTrip(t, "uint8", "uint8", uint8(255))
	checkRoundTrip(t, "uint16", "uint16", uint16(65535))
	checkRoundTrip(t, "uint32", "uint32", uint32(math.MaxUint32))
	checkRoundTrip(t, "uint64", "uint64", uint64(math.MaxUint64))
	checkRoundTrip(t, "uint", "uint64", uint(7))
	checkRoundTrip(t, "float32", "float32", float32(-1.5))
	checkRoundTrip(t, "float64", "float64", math.Pi)
	checkRoundTrip(t, "float64 inf", "float64", math.Inf(-1))
	checkRoundTrip(t, "complex64", "complex64", complex64(1+2i))
	checkRoundTrip(t, "complex128", "complex128", -3.5+1e9i)
	checkRoundTrip(t, "named float", "float32", Reward(0.25))
	checkRoundTrip(t, "string", "string", "héllo, wörld")
	checkRoundTrip(t, "empty string", "string", "")
	checkRoundTrip(t, "bytes", "[]uint8", []byte{0, 1, 2, 255})
	checkRoundTrip(t, "nil bytes", "[]uint8", []byte(nil))
	checkRoundTrip(t, "empty bytes", "[]uint8", []byte{})
	checkRoundTrip(t, "duration", "duration", 1500*time.Millisecond)
	checkRoundTrip(t, "float32 slice", "[]float32", []float32{1, -2, 3.5})
	checkRoundTrip(t, "int slice", "[]int64", []int{1, -2, 3})
	checkRoundTrip(t, "bool slice", "[]bool", []bool{true, false, true})
	checkRoundTrip(t, "string slice", "[]string", []string{"a", "", "ccc"})
	checkRoundTrip(t, "nested slice", "[][]int16", [][]int16{{1}, nil, {}, {2, 3}})
	checkRoundTrip(t, "array", "[3]uint32", [3]uint32{1, 2, 3})
	checkRoundTrip(t, "array of strings", "[2]string", [2]string{"x", "y"})
	checkRoundTrip(t, "empty array", "[0]int64", [0]int64{})
	checkRoundTrip(t, "map", "map[string]int64", map[string]int64{"a": 1, "b": -2})
	checkRoundTrip(t, "nil map", "map[string]int64", map[string]int64(nil))
	checkRoundTrip(t, "empty map", "map[string]int64", map[string]int64{})
	checkRoundTrip(t, "set", "map[int32]struct{}", map[int32]struct{}{1: {}, 2: {}})
	checkRoundTrip(t, "pointer", "*int64", &x)
	checkRoundTrip(t, "nil pointer", "*int64", (*int64)(nil))
	checkRoundTrip(t, "pointer to slice", "*[]bool", &bools)
	checkRoundTrip(t, "empty struct", "struct{}", struct{}{})
	checkRoundTrip(t, "tensor", "tensor", obs)
	checkRoundTrip(t, "scalar tensor", "tensor", tensor.Scalar(int64(3)))
	checkRoundTrip(t, "zero tensor", "tensor", tensor.Tensor{})
	checkRoundTrip(t, "tensor slice", "[]tensor", []tensor.Tensor{obs, tensor.MustFromSlice([]bool{true, false})})
	checkRoundTrip(t, "tensor pointer", "*tensor", &obs)
	checkRoundTrip(t, "struct", "struct{ID uint16; Tags []string}", Inner{ID: 3, Tags: []string{"x"}})
	checkRoundTrip(t, "nested structs",
		"struct{Name string; Inner struct{ID uint16; Tags []string}; Ptr *struct{ID uint16; Tags []string}; "+
			"Scores map[string]float64; Grid [2][3]int8; Wait duration; Obs tensor; Rewards []float32; "+
			"Nested []map[int32]*[]bool}",
		Outer{
			Name:    "outer",
			Inner:   Inner{ID: 1, Tags: []string{"a", "b"}},
			Ptr:     &Inner{ID: 2},
			Scores:  map[string]float64{"q": 0.5},
			Grid:    [2][3]int8{{1, 2, 3}, {-4, -5, -6}},
			Wait:    time.Second,
			Obs:     obs,
			Rewards: []Reward{1, 0.5},
			Nested:  []map[int32]*[]bool{{7: &bools, 8: nil}, nil},
		})
	checkRoundTrip(t, "anonymous struct", "struct{A int64; B struct{C []uint8}}",
		struct {
			A int
			B struct{ C []byte }
		}{A: 1, B: struct{ C []byte }{C: []byte("c")}})
}

func TestCodecSkipsUnexportedAndTaggedFields(t *testing.T) {
	out, _ := roundTrip(t, Outer{Name: "n", Skipped: 5, internal: 6})
	if out.Name != "n" || out.Skipped != 0 || out.internal != 0 {
		t.Fatalf("got %+v", out)
	}
}

func TestCodecIntOnWire(t *testing.T) {
	// int travels as 8 little-endian bytes whatever the platform.
	_, data := roundTrip(t, 1)
	if want := []byte{1, 0, 0, 0, 0, 0, 0, 0}; string(data) != string(want) {
		t.Fatalf("int 1 encodes as %x, want %x", data, want)
	}
	_, data = roundTrip(t, []uint16{1, 2})
	if want := []byte{3, 1, 0, 2, 0}; string(data) != string(want) {
		t.Fatalf("[]uint16{1,2} encodes as %x, want %x", data, want)
	}
}

func TestCodecDecodedBytesDoNotGrowIntoMessage(t *testing.T) {
	type pair struct{ A, B []byte }
	out, _ := roundTrip(t, pair{A: []byte("aa"), B: []byte("bb")})
	out.A = append(out.A, 'X')
	if string(out.B) != "bb" {
		t.Fatalf("appending to A changed B to %q", out.B)
	}
}

func TestUnsupportedTypes(t *testing.T) {
	type withAny struct{ V any }
	type node struct{ Next *node }
	type hidden struct{ x int }
	_ = hidden{x: 0}
	for _, tc := range []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[any](), "interfaces are not supported"},
		{reflect.TypeFor[error](), "interfaces are not supported"},
		{reflect.TypeFor[chan int](), "channels are not supported"},
		{reflect.TypeFor[func()](), "functions are not supported"},
		{reflect.TypeFor[uintptr](), "kind uintptr is not supported"},
		{reflect.TypeFor[unsafe.Pointer](), "kind unsafe.Pointer is not supported"},
		{reflect.TypeFor[context.Context](), "only allowed as a method's first parameter"},
		{reflect.TypeFor[[]chan int](), "element (chan int): channels"},
		{reflect.TypeFor[map[string]func()](), "value (func()): functions"},
		{reflect.TypeFor[withAny](), "field V (interface {}): interfaces"},
		{reflect.TypeFor[node](), "recursive types are not supported"},
		{reflect.TypeFor[hidden](), "fields are all unexported"},
		{reflect.TypeFor[time.Time](), "fields are all unexported"},
		{reflect.TypeFor[[1<<24 + 1]byte](), "arrays longer than"},
	} {
		_, err := codecFor(tc.typ)
		if err == nil {
			t.Errorf("codecFor(%s) succeeded", tc.typ)
			continue
		}
		if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), tc.typ.String()) {
			t.Errorf("codecFor(%s) = %v, want ErrUnsupportedType naming the type and %q", tc.typ, err, tc.want)
		}
	}
}

func TestInvalidTensorDoesNotEncode(t *testing.T) {
	c, _ := codecFor(tensorType)
	bad := tensor.Tensor{DType: tensor.Float32, Shape: []int{2}, Data: []byte{1}}
	if _, err := encodeValue(nil, c, reflect.ValueOf(bad)); !errors.Is(err, tensor.ErrInvalid) {
		t.Fatalf("encoding %v: err = %v, want tensor.ErrInvalid", bad, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  reflect.Type
		data []byte
	}{
		{"empty", reflect.TypeFor[int32](), nil},
		{"short int", reflect.TypeFor[int64](), []byte{1, 2, 3}},
		{"bool 2", reflect.TypeFor[bool](), []byte{2}},
		{"bool slice 7", reflect.TypeFor[[]bool](), []byte{3, 1, 7}},
		{"bool array 9", reflect.TypeFor[[2]bool](), []byte{0, 9}},
		{"pointer tag 2", reflect.TypeFor[*int8](), []byte{2, 1}},
		{"string too long", reflect.TypeFor[string](), []byte{5, 'a'}},
		{"slice too long", reflect.TypeFor[[]int32](), []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3, 4}},
		{"huge varint", reflect.TypeFor[[]byte](), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}},
		{"duplicate key", reflect.TypeFor[map[int8]bool](), []byte{3, 1, 1, 1, 0}},
		{"trailing bytes", reflect.TypeFor[int8](), []byte{1, 2}},
		{"tensor bad dtype", tensorType, []byte{200, 2, 1, 2, 1}},
		{"tensor short data", tensorType, []byte{byte(tensor.Float32), 2, 2, 2, 1}},
		{"tensor huge dim", tensorType, []byte{byte(tensor.Uint8), 2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1}},
		{"truncated struct", reflect.TypeFor[struct{ X, Y int8 }](), []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := codecFor(tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeValue(c, tc.data); !errors.Is(err, errMalformed) {
				t.Fatalf("decode %x into %s: err = %v, want errMalformed", tc.data, tc.typ, err)
			}
		})
	}
}

func TestCompatibility(t *testing.T) {
	inner, _ := codecFor(reflect.TypeFor[Inner]())
	renamed, _ := codecFor(reflect.TypeFor[Renamed]())
	reordered, _ := codecFor(reflect.TypeFor[Reordered]())
	if err := compatible(inner, renamed.desc); err != nil {
		t.Errorf("renamed fields: %v", err)
	}
	if err := compatible(inner, reordered.desc); err == nil {
		t.Errorf("reordered fields are compatible")
	}
	i64, _ := codecFor(reflect.TypeFor[int64]())
	for _, d := range []string{"int32", "uint64", "[]int64", "struct{", "nil", ""} {
		if compatible(i64, d) == nil {
			t.Errorf("int64 accepts %q", d)
		}
	}
	if compatible(i64, "int64") != nil {
		t.Errorf("int64 rejects int64")
	}
}

func TestParseDescLimits(t *testing.T) {
	for _, d := range []string{
		"", "int", "[]", "[01]int8", "[16777217]int8", "[4294967296]int64", "map[[]int8]bool",
		"struct{x int8}", "struct{A int8; A int8}", "struct{A int8;B int8}", "struct{A int8",
		strings.Repeat("[]", maxDescDepth) + "int8", "[16777216][16777216]int64", "*", "map[int8]",
	} {
		if _, err := codecForDesc(d); err == nil {
			t.Errorf("codecForDesc(%q) succeeded", d)
		}
	}
	for _, d := range []string{"[16777216]struct{}", "map[struct{A int8; B [2]string}][]*tensor", "struct{Ä int8; B_2 bool}"} {
		if _, err := codecForDesc(d); err != nil {
			t.Errorf("codecForDesc(%q): %v", d, err)
		}
	}
}
