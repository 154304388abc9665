package chunkcodec

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/recall-rl/recall/internal/tensor"
)

// within reports whether b lies inside src's memory.
func within(b, src []byte) bool {
	if len(b) == 0 || len(src) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	return p >= lo && p < lo+uintptr(len(src))
}

func TestDecoderSharesUncompressedPayload(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		name   string
		cols   []Column
		opts   Options
		shared bool
	}{
		{"raw floats", []Column{randomColumn(r, "obs", tensor.Float32, []int{64}, 3, false)}, Options{Level: LevelNone}, true},
		{"incompressible floats", []Column{randomColumn(r, "obs", tensor.Float32, []int{256}, 1, false)}, Options{}, true},
		{"several columns", []Column{
			randomColumn(r, "a", tensor.Float32, []int{2, 3}, 4, false),
			randomColumn(r, "b", tensor.Int8, nil, 4, false),
			randomColumn(r, "c", tensor.Float64, []int{5}, 4, false),
		}, Options{Level: LevelNone}, true},
		{"compressed", []Column{randomColumn(r, "obs", tensor.Int32, []int{256}, 4, true)}, Options{}, false},
		{"delta", []Column{randomColumn(r, "ctr", tensor.Int64, []int{8}, 4, false)}, Options{Level: LevelNone, DeltaEncode: true}, false},
	}
	var d Decoder
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := Encode(tc.cols, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			orig := slices.Clone(enc)
			c, err := d.Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			checkChunk(t, c, tc.cols)
			if !slices.Equal(orig, enc) {
				t.Fatal("Decoder.Decode modified its input")
			}
			for i := range tc.cols {
				if got := within(c.Batched(i).Data, enc); got != tc.shared {
					t.Errorf("column %d shares src: %v, want %v", i, got, tc.shared)
				}
			}
			// The same chunk decoded by Decode is equal and owns its data.
			c2, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.cols {
				if !c2.Batched(i).Equal(c.Batched(i)) {
					t.Errorf("column %d differs from Decode", i)
				}
				if within(c2.Batched(i).Data, enc) {
					t.Errorf("Decode shares column %d with src", i)
				}
			}
		})
	}
}

func TestDecoderInternsNames(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var d Decoder
	var first string
	for i := range 3 {
		enc, err := Encode([]Column{randomColumn(r, "observation", tensor.Float32, []int{4}, 1, false)}, Options{Level: LevelNone})
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		name := c.Info(0).Name
		if i == 0 {
			first = name
		} else if unsafe.StringData(name) != unsafe.StringData(first) {
			t.Fatal("column names are not shared between chunks")
		}
	}
	// The intern table is bounded.
	for i := range 2 * maxInterned {
		enc, err := Encode([]Column{randomColumn(r, fmt.Sprintf("c%d", i), tensor.Uint8, nil, 1, false)}, Options{Level: LevelNone})
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("c%d", i); c.Info(0).Name != want {
			t.Fatalf("name %q, want %q", c.Info(0).Name, want)
		}
	}
	if len(d.names) > maxInterned {
		t.Fatalf("%d names interned, limit %d", len(d.names), maxInterned)
	}
}

func TestDecoderErrorsAndLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	enc, err := Encode([]Column{randomColumn(r, "obs", tensor.Float32, []int{64}, 2, false)}, Options{Level: LevelNone})
	if err != nil {
		t.Fatal(err)
	}
	d := Decoder{MaxRawSize: 100}
	if _, err := d.Decode(enc); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v, want ErrTooLarge", err)
	}
	var d2 Decoder
	bad := slices.Clone(enc)
	bad[len(bad)-10] ^= 1
	if c, err := d2.Decode(bad); !errors.Is(err, ErrChecksum) || c != nil {
		t.Fatalf("flipped bit: %v, %v; want ErrChecksum", c, err)
	}
	if _, err := d2.Decode(enc[:len(enc)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v, want ErrCorrupt", err)
	}
}

// TestDecodeAllocs pins the allocations of decoding a one-column chunk:
// the Chunk, its buffer and the column name for Decode, the Chunk alone for
// a Decoder.
func TestDecodeAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	enc, err := Encode([]Column{randomColumn(r, "obs", tensor.Float32, []int{256}, 1, false)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Decode(enc) }); n > 3 {
		t.Errorf("Decode: %v allocations, want ≤ 3", n)
	}
	var d Decoder
	if n := testing.AllocsPerRun(100, func() { _, _ = d.Decode(enc) }); n > 1 {
		t.Errorf("Decoder.Decode: %v allocations, want ≤ 1", n)
	}
}

// BenchmarkDecoder decodes one-step chunks of incompressible data, as a
// sampler receives them, with Decode and with a Decoder.
func BenchmarkDecoder(b *testing.B) {
	for _, size := range benchSizes {
		r := rand.New(rand.NewPCG(1, 1))
		enc, err := Encode([]Column{randomColumn(r, "observation", tensor.Float32, []int{size.bytes / 4}, 1, false)}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run("step:"+size.name+";decode", func(b *testing.B) {
			b.SetBytes(int64(size.bytes))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("step:"+size.name+";decoder", func(b *testing.B) {
			var d Decoder
			b.SetBytes(int64(size.bytes))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
