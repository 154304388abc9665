package courier

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/recall-rl/recall/internal/tensor"
)

type fuzzStruct struct {
	A  bool
	B  int16
	C  []uint32
	D  map[string]*[2]float64
	E  tensor.Tensor
	F  [][]byte
	G  *fuzzInner
	H  time.Duration
	I  []tensor.Tensor
	J  map[fuzzInner]struct{}
	K  complex64
	L  []bool
	M  [3]int8
	N  string
	O  map[int64]int
	P  []struct{}
	Q  *[]string
	RR uint
}

type fuzzInner struct {
	X int32
	Y string
}

// fuzzTypes are decoded from every input.
var fuzzTypes = []reflect.Type{
	reflect.TypeFor[fuzzStruct](),
	reflect.TypeFor[[]fuzzStruct](),
	reflect.TypeFor[map[string][]tensor.Tensor](),
	reflect.TypeFor[[]MethodInfo](),
	reflect.TypeFor[string](),
	reflect.TypeFor[[]struct{}](),
}

// FuzzDecode checks that decoding arbitrary bytes, into fixed types and into
// types built from arbitrary descriptors, never panics, and that whatever
// decodes re-encodes and decodes again. It also feeds the bytes to the
// server's request path and the client's response path.
func FuzzDecode(f *testing.F) {
	seed := fuzzStruct{
		A: true, B: -3, C: []uint32{1, 2}, D: map[string]*[2]float64{"k": {1, 2}, "nil": nil},
		E: tensor.MustFromSlice([]int16{1, 2, 3, 4}, 2, 2), F: [][]byte{nil, {}, []byte("x")},
		G: &fuzzInner{X: 1, Y: "y"}, H: time.Second, I: []tensor.Tensor{{}}, J: map[fuzzInner]struct{}{{}: {}},
		K: 1i, L: []bool{true}, M: [3]int8{1, 2, 3}, N: "n", O: map[int64]int{1: 2}, P: make([]struct{}, 3),
	}
	sc, err := codecFor(reflect.TypeFor[fuzzStruct]())
	if err != nil {
		f.Fatal(err)
	}
	data, err := encodeValue(nil, sc, reflect.ValueOf(seed))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sc.desc, data)
	f.Add("[]uint8", []byte{4, 1, 2, 3})
	f.Add("map[string]int64", []byte{2, 1, 'a', 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add("[4]struct{A *tensor}", []byte{1, 1, 2, 2, 2, 0, 0, 0, 0})
	f.Add("[]struct{}", []byte{0xff, 0x7f})

	// A server whose methods the request path reaches.
	srv := &Server{methods: map[string]*method{}, logger: slog.New(slog.DiscardHandler)}
	for name, fn := range map[string]any{
		"Add":   func(a, b int) int { return a + b },
		"Echo":  func(s fuzzStruct) fuzzStruct { return s },
		"Mixed": func(p *int64, m map[string]int, xs ...float32) {},
	} {
		m, err := newMethod(name, reflect.ValueOf(fn))
		if err != nil {
			f.Fatal(err)
		}
		srv.methods[name] = m
	}
	for _, args := range [][]any{{1, 2}, {seed}, {nil, nil, []float32{1}}} {
		name := map[int]string{2: "Add", 1: "Echo", 3: "Mixed"}[len(args)]
		req, err := encodeRequest(name, args)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("", *req.buf)
	}

	f.Fuzz(func(t *testing.T, desc string, data []byte) {
		for _, typ := range fuzzTypes {
			c, err := codecFor(typ)
			if err != nil {
				t.Fatal(err)
			}
			checkReencode(t, c, data)
		}
		if c, err := codecForDesc(desc); err == nil {
			checkReencode(t, c, data)
		}
		_, _ = srv.handleCall(t.Context(), data)
		_, _ = decodeAny("M", data)
		_, _ = decodeResult[fuzzStruct]("M", data)
		_, _ = decodeResult[any]("M", data)
	})
}

func checkReencode(t *testing.T, c *typeCodec, data []byte) {
	v, err := decodeValue(c, data)
	if err != nil {
		return
	}
	again, err := encodeValue(nil, c, v)
	if err != nil {
		t.Fatalf("%s: decoded %x but cannot re-encode: %v", c.desc, data, err)
	}
	if size := c.sizeOf(v); size != len(again) {
		t.Fatalf("%s: sizeOf says %d bytes, encoding has %d", c.desc, size, len(again))
	}
	if _, err := decodeValue(c, again); err != nil {
		t.Fatalf("%s: re-encoding %x of %x does not decode: %v", c.desc, again, data, err)
	}
}
