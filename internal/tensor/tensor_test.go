package tensor

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
	"unsafe"
)

// Named element types, as user code declares them.
type (
	reward float32
	action int64
	done   bool
	pixel  uint8
	code   int8
	port   uint16
	count  uint32
	id     uint64
	delta  int16
	small  int32
	big    float64
)

// roundTrip checks FromSlice, Validate, the little-endian layout (when want
// is not nil) and ToSlice for one element type.
func roundTrip[E Element](dtype DType, values []E, shape []int, want []byte) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if got := DTypeOf[E](); got != dtype {
			t.Fatalf("DTypeOf = %v, want %v", got, dtype)
		}
		tn, err := FromSlice(values, shape...)
		if err != nil {
			t.Fatalf("FromSlice: %v", err)
		}
		if err := tn.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if tn.DType != dtype {
			t.Errorf("DType = %v, want %v", tn.DType, dtype)
		}
		wantShape := shape
		if wantShape == nil {
			wantShape = []int{len(values)}
		}
		if !slices.Equal(tn.Shape, wantShape) {
			t.Errorf("Shape = %v, want %v", tn.Shape, wantShape)
		}
		if len(tn.Data) != len(values)*dtype.Size() {
			t.Errorf("len(Data) = %d, want %d", len(tn.Data), len(values)*dtype.Size())
		}
		if want != nil && !bytes.Equal(tn.Data, want) {
			t.Errorf("Data = % x, want % x", tn.Data, want)
		}
		back, err := ToSlice[E](tn)
		if err != nil {
			t.Fatalf("ToSlice: %v", err)
		}
		if !slices.Equal(back, values) {
			t.Errorf("ToSlice = %v, want %v", back, values)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"uint8", roundTrip(Uint8, []uint8{0, 1, 255}, nil, []byte{0, 1, 255})},
		{"int8", roundTrip(Int8, []int8{-128, -1, 0, 127}, nil, []byte{0x80, 0xff, 0, 0x7f})},
		{"int16", roundTrip(Int16, []int16{-2, 0x0102}, nil, []byte{0xfe, 0xff, 0x02, 0x01})},
		{"int32", roundTrip(Int32, []int32{0x01020304, math.MinInt32}, nil, []byte{4, 3, 2, 1, 0, 0, 0, 0x80})},
		{"int64", roundTrip(Int64, []int64{-1, 0x0102030405060708}, nil, []byte{
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 8, 7, 6, 5, 4, 3, 2, 1})},
		{"uint16", roundTrip(Uint16, []uint16{0xbeef}, nil, []byte{0xef, 0xbe})},
		{"uint32", roundTrip(Uint32, []uint32{0xdeadbeef, 1}, nil, []byte{0xef, 0xbe, 0xad, 0xde, 1, 0, 0, 0})},
		{"uint64", roundTrip(Uint64, []uint64{math.MaxUint64}, nil, bytes.Repeat([]byte{0xff}, 8))},
		{"float32", roundTrip(Float32, []float32{1, -2.5}, nil, []byte{0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0})},
		{"float32 special", roundTrip(Float32, []float32{float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, math.SmallestNonzeroFloat32}, nil, nil)},
		{"float64", roundTrip(Float64, []float64{1}, nil, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f})},
		{"bool", roundTrip(Bool, []bool{true, false, true}, nil, []byte{1, 0, 1})},
		{"2x3 float64", roundTrip(Float64, []float64{1, 2, 3, 4, 5, 6}, []int{2, 3}, nil)},
		{"1x1x1 int16", roundTrip(Int16, []int16{7}, []int{1, 1, 1}, []byte{7, 0})},

		// Named types map to the dtype of their underlying type.
		{"named float32", roundTrip(Float32, []reward{0.5, -1}, nil, []byte{0, 0, 0, 0x3f, 0, 0, 0x80, 0xbf})},
		{"named int64", roundTrip(Int64, []action{3, -3}, []int{2, 1}, nil)},
		{"named bool", roundTrip(Bool, []done{false, true}, nil, []byte{0, 1})},
		{"named uint8", roundTrip(Uint8, []pixel{1, 2, 3, 4}, []int{2, 2}, []byte{1, 2, 3, 4})},
		{"named int8", roundTrip(Int8, []code{-5}, nil, []byte{0xfb})},
		{"named uint16", roundTrip(Uint16, []port{8080}, nil, []byte{0x90, 0x1f})},
		{"named uint32", roundTrip(Uint32, []count{1 << 31}, nil, []byte{0, 0, 0, 0x80})},
		{"named uint64", roundTrip(Uint64, []id{1}, nil, []byte{1, 0, 0, 0, 0, 0, 0, 0})},
		{"named int16", roundTrip(Int16, []delta{-1}, nil, []byte{0xff, 0xff})},
		{"named int32", roundTrip(Int32, []small{-2}, nil, []byte{0xfe, 0xff, 0xff, 0xff})},
		{"named float64", roundTrip(Float64, []big{big(math.Copysign(0, -1)), 2}, nil, nil)},
		{"byte alias", roundTrip(Uint8, []byte("hi"), nil, []byte("hi"))},

		// Empty tensors.
		{"empty float32", roundTrip(Float32, []float32{}, nil, []byte{})},
		{"nil int64", roundTrip(Int64, []int64(nil), nil, []byte{})},
		{"empty 3x0", roundTrip(Int32, []int32{}, []int{3, 0}, []byte{})},
		{"empty 0x5 bool", roundTrip(Bool, []bool{}, []int{0, 5}, []byte{})},
		{"empty named", roundTrip(Float32, []reward{}, []int{0}, []byte{})},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestFloatNaNRoundTrip(t *testing.T) {
	// NaN != NaN, so compare bits rather than values.
	in := []float64{math.NaN(), math.Copysign(0, -1)}
	tn := MustFromSlice(in)
	out, err := ToSlice[float64](tn)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if math.Float64bits(out[i]) != math.Float64bits(in[i]) {
			t.Errorf("element %d: bits %x, want %x", i, math.Float64bits(out[i]), math.Float64bits(in[i]))
		}
	}
}

func TestFromSliceCopies(t *testing.T) {
	in := []int32{1, 2, 3}
	shape := []int{3}
	tn := MustFromSlice(in, shape...)
	in[0] = 100
	shape[0] = 7
	out, err := ToSlice[int32](tn)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out, []int32{1, 2, 3}) || !slices.Equal(tn.Shape, []int{3}) {
		t.Errorf("tensor changed with its inputs: %v %v", out, tn.Shape)
	}
	out[1] = 200
	if again, _ := ToSlice[int32](tn); again[1] != 2 {
		t.Errorf("ToSlice does not copy: %v", again)
	}
}

func TestFromSliceShapeErrors(t *testing.T) {
	tests := []struct {
		name   string
		values []float32
		shape  []int
	}{
		{"too few values", []float32{1, 2}, []int{3}},
		{"too many values", []float32{1, 2, 3, 4}, []int{3}},
		{"scalar with two values", []float32{1, 2}, []int{}},
		{"2x2 with 3 values", []float32{1, 2, 3}, []int{2, 2}},
		{"zero dim with values", []float32{1}, []int{0}},
		{"negative dims", []float32{1, 2}, []int{-1, -2}},
		{"negative dim with zero", []float32{}, []int{0, -5}},
		{"overflowing product", []float32{}, []int{1 << 40, 1 << 40}},
		{"dim too large", []float32{}, []int{0, 1 << 40}},
		{"too many elements", []float32{}, []int{1 << 16, 1 << 16}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn, err := FromSlice(tc.values, tc.shape...)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("FromSlice(%v, %v) = %+v, %v; want ErrInvalid", tc.values, tc.shape, tn, err)
			}
		})
	}
}

func TestMustFromSlicePanics(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, ErrInvalid) {
			t.Fatalf("recovered %v, want an ErrInvalid error", r)
		}
	}()
	MustFromSlice([]int8{1, 2, 3}, 2)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		t    Tensor
		ok   bool
	}{
		{"scalar", Tensor{DType: Int32, Data: make([]byte, 4)}, true},
		{"scalar empty shape", Tensor{DType: Int32, Shape: []int{}, Data: make([]byte, 4)}, true},
		{"matrix", Tensor{DType: Float64, Shape: []int{2, 3}, Data: make([]byte, 48)}, true},
		{"empty", Tensor{DType: Uint16, Shape: []int{0}}, true},
		{"empty 4x0x2", Tensor{DType: Uint16, Shape: []int{4, 0, 2}, Data: []byte{}}, true},
		{"largest", Tensor{DType: Bool, Shape: []int{0, MaxElements}}, true},
		{"zero value", Tensor{}, false},
		{"invalid dtype", Tensor{DType: Invalid, Shape: []int{1}, Data: []byte{0}}, false},
		{"unknown dtype", Tensor{DType: DType(200), Shape: []int{1}, Data: []byte{0}}, false},
		{"short data", Tensor{DType: Int64, Shape: []int{2}, Data: make([]byte, 15)}, false},
		{"long data", Tensor{DType: Int64, Shape: []int{2}, Data: make([]byte, 17)}, false},
		{"scalar without data", Tensor{DType: Bool}, false},
		{"data for empty", Tensor{DType: Uint8, Shape: []int{0}, Data: []byte{1}}, false},
		{"negative dim", Tensor{DType: Uint8, Shape: []int{-1}}, false},
		{"negative and zero dims", Tensor{DType: Uint8, Shape: []int{-3, 0}}, false},
		{"product overflow", Tensor{DType: Uint8, Shape: []int{1 << 32, 1 << 32}}, false},
		{"product overflow to zero", Tensor{DType: Uint8, Shape: []int{1 << 40, 1 << 40}}, false},
		{"dim too large", Tensor{DType: Uint8, Shape: []int{1 << 40, 0}}, false},
		{"too many elements", Tensor{DType: Uint8, Shape: []int{MaxElements, 2}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.t.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestToSliceErrors(t *testing.T) {
	i32 := MustFromSlice([]int32{1, 2})
	if _, err := ToSlice[float32](i32); !errors.Is(err, ErrInvalid) {
		t.Errorf("ToSlice[float32](int32 tensor) = %v, want ErrInvalid", err)
	}
	if _, err := ToSlice[uint32](i32); !errors.Is(err, ErrInvalid) {
		t.Errorf("ToSlice[uint32](int32 tensor) = %v, want ErrInvalid", err)
	}
	if _, err := ToSlice[small](i32); err != nil {
		t.Errorf("ToSlice[named int32](int32 tensor) = %v, want nil", err)
	}
	bad := Tensor{DType: Int32, Shape: []int{3}, Data: make([]byte, 8)}
	if _, err := ToSlice[int32](bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("ToSlice(short tensor) = %v, want ErrInvalid", err)
	}
}

func TestBoolNormalisation(t *testing.T) {
	raw := Tensor{DType: Bool, Shape: []int{2, 3}, Data: []byte{0, 1, 2, 0x80, 0xff, 0}}
	want := []bool{false, true, true, true, true, false}

	got, err := ToSlice[bool](raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ToSlice = %v, want %v", got, want)
	}
	// Re-encoding must give canonical 0/1 bytes: a bool holding 2 would
	// compare unequal to true.
	if re := MustFromSlice(got, 2, 3); !bytes.Equal(re.Data, []byte{0, 1, 1, 1, 1, 0}) {
		t.Errorf("re-encoded bytes = % x", re.Data)
	}
	// The byte under each bool must be 0 or 1, whatever the source byte was.
	for i := range got {
		if b := *(*uint8)(unsafe.Pointer(&got[i])); b > 1 {
			t.Errorf("element %d is stored as %#x", i, b)
		}
	}

	named, err := ToSlice[done](raw)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range named {
		if b != done(want[i]) {
			t.Errorf("named element %d = %v, want %v", i, b, want[i])
		}
	}
	if re := MustFromSlice(named); !bytes.Equal(re.Data, []byte{0, 1, 1, 1, 1, 0}) {
		t.Errorf("re-encoded named bytes = % x", re.Data)
	}
	// The source tensor is not modified.
	if !bytes.Equal(raw.Data, []byte{0, 1, 2, 0x80, 0xff, 0}) {
		t.Errorf("ToSlice modified its input: % x", raw.Data)
	}
}

func TestScalar(t *testing.T) {
	tests := []struct {
		name  string
		t     Tensor
		dtype DType
		data  []byte
	}{
		{"float64", Scalar(2.5), Float64, []byte{0, 0, 0, 0, 0, 0, 4, 0x40}},
		{"int8", Scalar(int8(-1)), Int8, []byte{0xff}},
		{"bool", Scalar(true), Bool, []byte{1}},
		{"named", Scalar(reward(1)), Float32, []byte{0, 0, 0x80, 0x3f}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.t.DType != tc.dtype || tc.t.Shape == nil || len(tc.t.Shape) != 0 || tc.t.NumElements() != 1 {
				t.Errorf("Scalar = %+v", tc.t)
			}
			if !bytes.Equal(tc.t.Data, tc.data) {
				t.Errorf("Data = % x, want % x", tc.t.Data, tc.data)
			}
			if err := tc.t.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
	if v, err := ToSlice[float64](Scalar(2.5)); err != nil || !slices.Equal(v, []float64{2.5}) {
		t.Errorf("ToSlice(Scalar(2.5)) = %v, %v", v, err)
	}
	// FromSlice with an explicit empty shape is also a scalar.
	s, err := FromSlice([]int32{9}, []int{}...)
	if err != nil || len(s.Shape) != 0 || !s.Equal(Scalar(int32(9))) {
		t.Errorf("FromSlice(v, []int{}...) = %+v, %v", s, err)
	}
}

type dtypeCase struct {
	d       DType
	name    string
	size    int
	integer bool
}

func TestDTypeNames(t *testing.T) {
	all := []dtypeCase{
		{Uint8, "uint8", 1, true},
		{Int8, "int8", 1, true},
		{Int16, "int16", 2, true},
		{Int32, "int32", 4, true},
		{Int64, "int64", 8, true},
		{Uint16, "uint16", 2, true},
		{Uint32, "uint32", 4, true},
		{Uint64, "uint64", 8, true},
		{Float32, "float32", 4, false},
		{Float64, "float64", 8, false},
		{Bool, "bool", 1, false},
	}
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.d.Valid() {
				t.Errorf("%v not Valid", tc.d)
			}
			if got := tc.d.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got, err := ParseDType(tc.name); err != nil || got != tc.d {
				t.Errorf("ParseDType(%q) = %v, %v", tc.name, got, err)
			}
			if got, err := ParseDType(tc.d.String()); err != nil || got != tc.d {
				t.Errorf("ParseDType(String()) = %v, %v", got, err)
			}
			if tc.d.Size() != tc.size {
				t.Errorf("Size() = %d, want %d", tc.d.Size(), tc.size)
			}
			if tc.d.IsInteger() != tc.integer {
				t.Errorf("IsInteger() = %v", tc.d.IsInteger())
			}
		})
	}
	// Every valid dtype is in the table above.
	for d := DType(0); d < 255; d++ {
		if d.Valid() && !slices.ContainsFunc(all, func(e dtypeCase) bool { return e.d == d }) {
			t.Errorf("dtype %v is not tested", d)
		}
	}

	for _, name := range []string{"", "invalid", "float", "int", "Float32", " float32", "dtype(3)", "complex64"} {
		if d, err := ParseDType(name); err == nil {
			t.Errorf("ParseDType(%q) = %v, want error", name, d)
		}
	}
	for _, d := range []DType{Invalid, Bool + 1, 200} {
		if d.Valid() || d.Size() != 0 || d.IsInteger() {
			t.Errorf("%v: Valid=%v Size=%d IsInteger=%v", d, d.Valid(), d.Size(), d.IsInteger())
		}
	}
	if got := DType(200).String(); got != "dtype(200)" {
		t.Errorf("DType(200).String() = %q", got)
	}
	if got := Invalid.String(); got != "invalid" {
		t.Errorf("Invalid.String() = %q", got)
	}
}

func TestEqual(t *testing.T) {
	a := MustFromSlice([]int32{1, 2, 3, 4}, 2, 2)
	tests := []struct {
		name string
		u    Tensor
		want bool
	}{
		{"same", MustFromSlice([]int32{1, 2, 3, 4}, 2, 2), true},
		{"other data", MustFromSlice([]int32{1, 2, 3, 5}, 2, 2), false},
		{"other shape", MustFromSlice([]int32{1, 2, 3, 4}, 4, 1), false},
		{"other rank", MustFromSlice([]int32{1, 2, 3, 4}), false},
		{"other dtype", Tensor{DType: Uint32, Shape: []int{2, 2}, Data: a.Data}, false},
		{"zero", Tensor{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Equal(tc.u); got != tc.want {
				t.Errorf("a.Equal(u) = %v, want %v", got, tc.want)
			}
			if got := tc.u.Equal(a); got != tc.want {
				t.Errorf("u.Equal(a) = %v, want %v", got, tc.want)
			}
		})
	}
	// nil and empty shapes and data are the same.
	if !(Tensor{DType: Int8, Data: []byte{1}}).Equal(Tensor{DType: Int8, Shape: []int{}, Data: []byte{1}}) {
		t.Error("nil shape != empty shape")
	}
	if !(Tensor{DType: Int8, Shape: []int{0}}).Equal(Tensor{DType: Int8, Shape: []int{0}, Data: []byte{}}) {
		t.Error("nil data != empty data")
	}
}

func TestNumElements(t *testing.T) {
	tests := []struct {
		shape []int
		want  int
	}{
		{nil, 1},
		{[]int{}, 1},
		{[]int{0}, 0},
		{[]int{5}, 5},
		{[]int{2, 3, 4}, 24},
		{[]int{2, 0, 4}, 0},
	}
	for _, tc := range tests {
		if got := (Tensor{Shape: tc.shape}).NumElements(); got != tc.want {
			t.Errorf("NumElements(%v) = %d, want %d", tc.shape, got, tc.want)
		}
	}
}

// TestPortableElementPath checks the per-element path used on big-endian
// machines (putElement, getElement) against the native copy used here.
func TestPortableElementPath(t *testing.T) {
	check := func(name string, native []byte, put func(i int, dst []byte), size int) {
		t.Helper()
		got := make([]byte, len(native))
		for i := 0; i < len(native)/size; i++ {
			put(i, got[i*size:])
		}
		if string(got) != string(native) {
			t.Errorf("%s: putElement wrote %v, native encoding is %v", name, got, native)
		}
	}
	f32 := []float32{1.5, -2, float32(math.Inf(1))}
	r32 := []reward{0.25, -1}
	f64 := []float64{math.Pi, math.Copysign(0, -1), math.MaxFloat64}
	i16 := []int16{-1, 300, math.MinInt16}
	u64 := []uint64{1 << 63, 42}
	bs := []bool{true, false, true}
	check("float32", MustFromSlice(f32).Data, func(i int, d []byte) { putElement(d, f32[i]) }, 4)
	check("reward", MustFromSlice(r32).Data, func(i int, d []byte) { putElement(d, r32[i]) }, 4)
	check("float64", MustFromSlice(f64).Data, func(i int, d []byte) { putElement(d, f64[i]) }, 8)
	check("int16", MustFromSlice(i16).Data, func(i int, d []byte) { putElement(d, i16[i]) }, 2)
	check("uint64", MustFromSlice(u64).Data, func(i int, d []byte) { putElement(d, u64[i]) }, 8)
	check("bool", MustFromSlice(bs).Data, func(i int, d []byte) { putElement(d, bs[i]) }, 1)

	if got := getElement[float32](MustFromSlice(f32).Data[4:]); got != f32[1] {
		t.Errorf("getElement[float32] = %v, want %v", got, f32[1])
	}
	if got := getElement[reward](MustFromSlice(r32).Data); got != r32[0] {
		t.Errorf("getElement[reward] = %v, want %v", got, r32[0])
	}
	if got := getElement[int16](MustFromSlice(i16).Data[4:]); got != i16[2] {
		t.Errorf("getElement[int16] = %v, want %v", got, i16[2])
	}
	if got := getElement[uint64](MustFromSlice(u64).Data); got != u64[0] {
		t.Errorf("getElement[uint64] = %v, want %v", got, u64[0])
	}
	if got := getElement[bool]([]byte{7}); !got {
		t.Error("getElement[bool] of byte 7 is false, want true")
	}
	if got := getElement[bool]([]byte{0}); got {
		t.Error("getElement[bool] of byte 0 is true")
	}
}
