package chunkcodec

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recall-rl/recall/internal/tensor"
)

// fuzzLimit keeps each fuzz iteration small; the limit logic itself is
// exercised like any other.
const fuzzLimit = 16 << 20

// fuzzSeeds returns valid chunks of many kinds.
func fuzzSeeds(tb testing.TB) [][]byte {
	r := rand.New(rand.NewPCG(42, 43))
	var seeds [][]byte
	add := func(cols []Column, opts Options) {
		b, err := Encode(cols, opts)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, level := range allLevels {
		for _, delta := range []bool{false, true} {
			opts := Options{Level: level, DeltaEncode: delta}
			add([]Column{randomColumn(r, "x", tensor.Int32, []int{4}, 3, true)}, opts)
			add([]Column{
				randomColumn(r, "obs", tensor.Float32, []int{2, 3}, 5, true),
				randomColumn(r, "act", tensor.Int64, []int{}, 5, true),
				randomColumn(r, "done", tensor.Bool, []int{}, 5, false),
				randomColumn(r, "ctr", tensor.Uint16, []int{7}, 5, true),
			}, opts)
		}
	}
	for _, dt := range allDTypes {
		add([]Column{randomColumn(r, dt.String(), dt, []int{2}, 2, false)}, Options{Level: LevelNone, DeltaEncode: true})
	}
	add([]Column{{Name: "empty", Steps: []tensor.Tensor{{DType: tensor.Int8, Shape: []int{0, 3}}, {DType: tensor.Int8, Shape: []int{0, 3}}}}}, Options{DeltaEncode: true})
	add([]Column{randomColumn(r, "big", tensor.Uint8, []int{512}, 8, true)}, Options{Level: LevelFastest, DeltaEncode: true})
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		// Nearly every mutation breaks the checksum. Also decode the input
		// with its checksum repaired, so the fuzzer reaches the header
		// parser, the decompressor and the delta decoder.
		if len(data) > checksumSize {
			checkDecode(t, craft(data[:len(data)-checksumSize]))
		}
	})
}

// checkDecode decodes data and checks the result's invariants.
func checkDecode(t *testing.T, data []byte) {
	orig := slices.Clone(data)
	c, err := DecodeWithLimit(data, fuzzLimit)
	if !slices.Equal(orig, data) {
		t.Fatal("Decode modified its input")
	}
	if err != nil {
		if c != nil {
			t.Fatal("non-nil chunk with an error")
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	h, err := ParseHeader(data)
	if err != nil {
		t.Fatalf("Decode succeeded but ParseHeader failed: %v", err)
	}
	ch := c.Header()
	if h.NumSteps != ch.NumSteps || h.RawSize != ch.RawSize || h.Compressed != ch.Compressed || len(h.Columns) != len(ch.Columns) {
		t.Fatalf("ParseHeader %+v != Decode header %+v", h, ch)
	}
	if ch.NumSteps < 1 || c.NumColumns() < 1 || ch.RawSize > fuzzLimit {
		t.Fatalf("bad header %+v", ch)
	}
	cols := make([]Column, c.NumColumns())
	anyDelta := false
	for i := range cols {
		info := c.Info(i)
		if info.Name != h.Columns[i].Name || info.DType != h.Columns[i].DType || !slices.Equal(info.Shape, h.Columns[i].Shape) || info.Delta != h.Columns[i].Delta {
			t.Fatalf("column %d: ParseHeader %+v != Decode %+v", i, h.Columns[i], info)
		}
		anyDelta = anyDelta || info.Delta
		b := c.Batched(i)
		if err := b.Validate(); err != nil {
			t.Fatalf("column %d batched: %v", i, err)
		}
		if b.Shape[0] != ch.NumSteps || !slices.Equal(b.Shape[1:], info.Shape) {
			t.Fatalf("column %d batched shape %v", i, b.Shape)
		}
		if ch.NumSteps*len(cols) > 1<<16 {
			// Skip the per-step checks and re-encoding for huge
			// chunks of empty steps: they would only be slow.
			continue
		}
		cols[i] = c.Column(i)
		for s, st := range cols[i].Steps {
			if err := st.Validate(); err != nil {
				t.Fatalf("column %d step %d: %v", i, s, err)
			}
		}
	}
	if ch.NumSteps*len(cols) > 1<<16 {
		return
	}
	// Whatever decodes must encode again to the same contents.
	re, err := Encode(cols, Options{Level: LevelFastest, DeltaEncode: anyDelta})
	if err != nil {
		t.Fatalf("re-encoding a decoded chunk: %v", err)
	}
	c2, err := Decode(re)
	if err != nil {
		t.Fatalf("decoding a re-encoded chunk: %v", err)
	}
	for i := range cols {
		if !c2.Batched(i).Equal(c.Batched(i)) || c2.Info(i).Name != c.Info(i).Name {
			t.Fatalf("column %d changed on re-encoding", i)
		}
	}
}

// TestFuzzSeeds runs the fuzz checks on the seeds in normal test runs.
func TestFuzzSeeds(t *testing.T) {
	for _, s := range fuzzSeeds(t) {
		if _, err := Decode(s); err != nil {
			t.Fatalf("seed does not decode: %v", err)
		}
		checkDecode(t, s)
	}
}
