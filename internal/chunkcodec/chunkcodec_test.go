package chunkcodec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/recall-rl/recall/internal/tensor"
)

var allDTypes = []tensor.DType{
	tensor.Uint8, tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64,
	tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.Float32, tensor.Float64, tensor.Bool,
}

var allLevels = []Level{LevelNone, LevelFastest, LevelDefault, LevelBetter, LevelBest}

// randomStep returns a tensor of the given dtype and shape with random
// contents (0 or 1 bytes for bools). Small values make the data compressible.
func randomStep(r *rand.Rand, dt tensor.DType, shape []int, small bool) tensor.Tensor {
	t := tensor.Tensor{DType: dt, Shape: slices.Clone(shape)}
	t.Data = make([]byte, t.NumElements()*dt.Size())
	for i := range t.Data {
		switch {
		case dt == tensor.Bool:
			t.Data[i] = byte(r.IntN(2))
		case small && i%dt.Size() == 0:
			t.Data[i] = byte(r.IntN(4))
		case small:
		default:
			t.Data[i] = byte(r.Uint32())
		}
	}
	return t
}

// randomColumn returns a column of n random steps.
func randomColumn(r *rand.Rand, name string, dt tensor.DType, shape []int, n int, small bool) Column {
	c := Column{Name: name, Steps: make([]tensor.Tensor, n)}
	for i := range c.Steps {
		c.Steps[i] = randomStep(r, dt, shape, small)
	}
	return c
}

// checkChunk checks that c holds exactly cols.
func checkChunk(t *testing.T, c *Chunk, cols []Column) {
	t.Helper()
	n := len(cols[0].Steps)
	if c.NumSteps() != n || c.NumColumns() != len(cols) {
		t.Fatalf("chunk has %d steps of %d columns, want %d of %d", c.NumSteps(), c.NumColumns(), n, len(cols))
	}
	for i, col := range cols {
		info := c.Info(i)
		first := col.Steps[0]
		if info.Name != col.Name || info.DType != first.DType || !slices.Equal(info.Shape, first.Shape) {
			t.Errorf("column %d info = %+v, want %q %s%v", i, info, col.Name, first.DType, first.Shape)
		}
		if got := c.Index(col.Name); got != i {
			t.Errorf("Index(%q) = %d, want %d", col.Name, got, i)
		}
		b := c.Batched(i)
		if err := b.Validate(); err != nil {
			t.Errorf("column %d batched: %v", i, err)
		}
		if want := append([]int{n}, first.Shape...); !slices.Equal(b.Shape, want) {
			t.Errorf("column %d batched shape %v, want %v", i, b.Shape, want)
		}
		var all []byte
		for s, step := range col.Steps {
			got := c.Step(i, s)
			if !got.Equal(step) {
				t.Fatalf("column %q step %d = %+v, want %+v", col.Name, s, got, step)
			}
			all = append(all, step.Data...)
		}
		if !bytes.Equal(b.Data, all) {
			t.Errorf("column %q batched data differs", col.Name)
		}
		back := c.Column(i)
		if back.Name != col.Name || len(back.Steps) != n {
			t.Errorf("Column(%d) = %q with %d steps", i, back.Name, len(back.Steps))
		}
	}
}

func TestRoundTripEveryDType(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{{}, {3}, {2, 4}, {0}, {1, 2, 3}}
	for _, dt := range allDTypes {
		for _, level := range allLevels {
			for _, delta := range []bool{false, true} {
				name := fmt.Sprintf("dtype:%s;level:%s;delta:%v", dt, level, delta)
				t.Run(name, func(t *testing.T) {
					var cols []Column
					for i, shape := range shapes {
						for j, small := range []bool{false, true} {
							cols = append(cols, randomColumn(r, fmt.Sprintf("c%d_%d", i, j), dt, shape, 7, small))
						}
					}
					opts := Options{Level: level, DeltaEncode: delta}
					enc, err := Encode(cols, opts)
					if err != nil {
						t.Fatal(err)
					}
					c, err := Decode(enc)
					if err != nil {
						t.Fatal(err)
					}
					checkChunk(t, c, cols)
					for i, col := range cols {
						wantDelta := delta && dt.IsInteger() && len(col.Steps[0].Shape) > 0
						if got := c.Info(i).Delta; got != wantDelta {
							t.Errorf("column %q Delta = %v, want %v", col.Name, got, wantDelta)
						}
					}
					if level == LevelNone && c.Header().Compressed {
						t.Error("LevelNone chunk is compressed")
					}
				})
			}
		}
	}
}

func TestRoundTripMixedColumns(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 10, 100} {
		for _, opts := range []Options{{}, {DeltaEncode: true}, {Level: LevelNone, DeltaEncode: true}, {Level: LevelBest}} {
			t.Run(fmt.Sprintf("steps:%d;level:%s;delta:%v", n, opts.Level, opts.DeltaEncode), func(t *testing.T) {
				cols := []Column{
					randomColumn(r, "observation", tensor.Float32, []int{4, 4}, n, false),
					randomColumn(r, "action", tensor.Int32, []int{}, n, true),
					randomColumn(r, "reward", tensor.Float64, []int{}, n, false),
					randomColumn(r, "done", tensor.Bool, []int{}, n, false),
					randomColumn(r, "frame", tensor.Uint8, []int{3, 5, 2}, n, true),
					randomColumn(r, "counter", tensor.Int64, []int{2}, n, false),
				}
				enc, err := Encode(cols, opts)
				if err != nil {
					t.Fatal(err)
				}
				c, err := Decode(enc)
				if err != nil {
					t.Fatal(err)
				}
				checkChunk(t, c, cols)
				h, err := ParseHeader(enc)
				if err != nil {
					t.Fatal(err)
				}
				if h.NumSteps != n || len(h.Columns) != len(cols) || h.Compressed != c.Header().Compressed || h.RawSize != c.Header().RawSize {
					t.Errorf("ParseHeader = %+v, Decode header = %+v", h, c.Header())
				}
			})
		}
	}
}

// TestDeltaShrinks checks that delta encoding makes slowly increasing
// integer columns (counters, timestamps) smaller, and that it is transparent.
func TestDeltaShrinks(t *testing.T) {
	const n, width = 64, 32
	tests := []struct {
		name     string
		next     func(r *rand.Rand, i int) int64 // increment of element i
		maxRatio float64                         // delta size / plain size
	}{
		// Timestamps with a fixed period per element: deltas are constant.
		{"constant stride", func(_ *rand.Rand, i int) int64 { return 1000 + int64(i) }, 0.5},
		// Event counters: small random increments.
		{"small increments", func(r *rand.Rand, _ int) int64 { return 1 + r.Int64N(4) }, 0.75},
	}
	for _, tc := range tests {
		r := rand.New(rand.NewPCG(5, 6))
		steps := make([]tensor.Tensor, n)
		acc := make([]int64, width)
		for i := range acc {
			acc[i] = r.Int64N(1 << 40)
		}
		for s := range steps {
			for i := range acc {
				acc[i] += tc.next(r, i)
			}
			steps[s] = tensor.MustFromSlice(slices.Clone(acc))
		}
		cols := []Column{{Name: "counters", Steps: steps}}
		for _, level := range allLevels {
			t.Run(tc.name+"/level:"+level.String(), func(t *testing.T) {
				plain, err := Encode(cols, Options{Level: level})
				if err != nil {
					t.Fatal(err)
				}
				delta, err := Encode(cols, Options{Level: level, DeltaEncode: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("plain %d bytes, delta %d bytes (raw %d)", len(plain), len(delta), n*width*8)
				if level != LevelNone && float64(len(delta)) > tc.maxRatio*float64(len(plain)) {
					t.Errorf("delta encoding gave %d bytes, plain %d: want at most %.0f%%", len(delta), len(plain), 100*tc.maxRatio)
				}
				c, err := Decode(delta)
				if err != nil {
					t.Fatal(err)
				}
				checkChunk(t, c, cols)
				if !c.Info(0).Delta {
					t.Error("column not marked as delta encoded")
				}
			})
		}
	}
}

// TestDeltaWraps checks that deltas wrap around for every integer width.
func TestDeltaWraps(t *testing.T) {
	cols := []Column{
		{Name: "u8", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]uint8{250, 0, 255}), tensor.MustFromSlice([]uint8{3, 255, 0}), tensor.MustFromSlice([]uint8{0, 1, 255})}},
		{Name: "i8", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]int8{-128, 127, 0}), tensor.MustFromSlice([]int8{127, -128, -1}), tensor.MustFromSlice([]int8{-128, 127, 1})}},
		{Name: "i16", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]int16{math.MinInt16, math.MaxInt16}), tensor.MustFromSlice([]int16{math.MaxInt16, math.MinInt16}), tensor.MustFromSlice([]int16{0, -1})}},
		{Name: "u16", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]uint16{0, math.MaxUint16}), tensor.MustFromSlice([]uint16{math.MaxUint16, 0}), tensor.MustFromSlice([]uint16{1, 2})}},
		{Name: "i32", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]int32{math.MinInt32, math.MaxInt32}), tensor.MustFromSlice([]int32{math.MaxInt32, math.MinInt32}), tensor.MustFromSlice([]int32{-7, 7})}},
		{Name: "u32", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]uint32{0, math.MaxUint32}), tensor.MustFromSlice([]uint32{math.MaxUint32, 0}), tensor.MustFromSlice([]uint32{5, 5})}},
		{Name: "i64", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]int64{math.MinInt64, math.MaxInt64}), tensor.MustFromSlice([]int64{math.MaxInt64, math.MinInt64}), tensor.MustFromSlice([]int64{-1, 1})}},
		{Name: "u64", Steps: []tensor.Tensor{
			tensor.MustFromSlice([]uint64{0, math.MaxUint64}), tensor.MustFromSlice([]uint64{math.MaxUint64, 0}), tensor.MustFromSlice([]uint64{1 << 63, 3})}},
	}
	for _, level := range allLevels {
		enc, err := Encode(cols, Options{Level: level, DeltaEncode: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		checkChunk(t, c, cols)
		for i := range cols {
			if !c.Info(i).Delta {
				t.Errorf("column %q not delta encoded", cols[i].Name)
			}
		}
	}
}

func TestDeltaByteLayout(t *testing.T) {
	// With no compression the stored payload shows the deltas directly.
	cols := []Column{{Name: "x", Steps: []tensor.Tensor{
		tensor.MustFromSlice([]int16{10, -1}),
		tensor.MustFromSlice([]int16{7, 1}),
		tensor.MustFromSlice([]int16{7, math.MinInt16}),
	}}}
	enc, err := Encode(cols, Options{Level: LevelNone, DeltaEncode: true})
	if err != nil {
		t.Fatal(err)
	}
	payload := enc[len(enc)-4-12 : len(enc)-4]
	want := []byte{10, 0, 0xff, 0xff, 0xfd, 0xff, 2, 0, 0, 0, 0xff, 0x7f} // 10,-1 | -3,2 | 0,MinInt16-1 wrapped
	if !bytes.Equal(payload, want) {
		t.Errorf("payload = % x, want % x", payload, want)
	}
}

func TestCompressionChoice(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	zeros := Column{Name: "z", Steps: []tensor.Tensor{{DType: tensor.Float32, Shape: []int{1024}, Data: make([]byte, 4096)}}}
	noise := randomColumn(r, "n", tensor.Uint8, []int{4096}, 2, false)
	tiny := Column{Name: "t", Steps: []tensor.Tensor{tensor.Scalar(int64(0)), tensor.Scalar(int64(0))}}
	tests := []struct {
		name       string
		col        Column
		level      Level
		compressed bool
	}{
		{"zeros default", zeros, LevelDefault, true},
		{"zeros fastest", zeros, LevelFastest, true},
		{"zeros best", zeros, LevelBest, true},
		{"zeros none", zeros, LevelNone, false},
		{"noise", noise, LevelBest, false},
		{"tiny", tiny, LevelBest, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := Encode([]Column{tc.col}, Options{Level: tc.level})
			if err != nil {
				t.Fatal(err)
			}
			h, err := ParseHeader(enc)
			if err != nil {
				t.Fatal(err)
			}
			if h.Compressed != tc.compressed {
				t.Errorf("Compressed = %v, want %v (%d bytes for %d raw)", h.Compressed, tc.compressed, len(enc), h.RawSize)
			}
			if !tc.compressed && len(enc) <= h.RawSize {
				t.Errorf("raw chunk is %d bytes for a %d-byte payload", len(enc), h.RawSize)
			}
			c, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			checkChunk(t, c, []Column{tc.col})
		})
	}
}

func TestLevelsDiffer(t *testing.T) {
	// Text-like data where better levels find more.
	var sb strings.Builder
	r := rand.New(rand.NewPCG(9, 10))
	words := []string{"actor", "learner", "replay", "table", "sample", "insert", "chunk", "priority"}
	for sb.Len() < 64<<10 {
		sb.WriteString(words[r.IntN(len(words))])
		sb.WriteByte(' ')
	}
	col := Column{Name: "text", Steps: []tensor.Tensor{tensor.MustFromSlice([]byte(sb.String()))}}
	size := map[Level]int{}
	for _, l := range allLevels {
		enc, err := Encode([]Column{col}, Options{Level: l})
		if err != nil {
			t.Fatal(err)
		}
		size[l] = len(enc)
	}
	t.Logf("sizes: %v", size)
	if !(size[LevelBest] < size[LevelFastest] && size[LevelFastest] < size[LevelNone]) {
		t.Errorf("unexpected sizes %v", size)
	}
}

func TestEncodeErrors(t *testing.T) {
	f32 := func(n int) tensor.Tensor { return tensor.MustFromSlice(make([]float32, n)) }
	manyCols := func(n int, dupAt int) []Column {
		cols := make([]Column, n)
		for i := range cols {
			cols[i] = Column{Name: fmt.Sprint("c", i), Steps: []tensor.Tensor{f32(1)}}
		}
		if dupAt >= 0 {
			cols[dupAt].Name = "c0"
		}
		return cols
	}
	deep := tensor.Tensor{DType: tensor.Uint8, Shape: make([]int, MaxRank+1), Data: nil}
	for i := range deep.Shape {
		deep.Shape[i] = 1
	}
	deep.Data = []byte{0}
	big := tensor.Tensor{DType: tensor.Uint8, Shape: []int{64 << 20}, Data: make([]byte, 64<<20)}
	bigSteps := make([]tensor.Tensor, MaxRawSize/(64<<20)+1)
	for i := range bigSteps {
		bigSteps[i] = big
	}

	tests := []struct {
		name string
		cols []Column
		opts Options
		want error
	}{
		{"no columns", nil, Options{}, ErrInvalidColumn},
		{"no steps", []Column{{Name: "a"}}, Options{}, ErrInvalidColumn},
		{"step count differs", []Column{{Name: "a", Steps: []tensor.Tensor{f32(1)}}, {Name: "b", Steps: []tensor.Tensor{f32(1), f32(1)}}}, Options{}, ErrInvalidColumn},
		{"no name", []Column{{Steps: []tensor.Tensor{f32(1)}}}, Options{}, ErrInvalidColumn},
		{"long name", []Column{{Name: strings.Repeat("x", MaxNameLen+1), Steps: []tensor.Tensor{f32(1)}}}, Options{}, ErrInvalidColumn},
		{"duplicate name", []Column{{Name: "a", Steps: []tensor.Tensor{f32(1)}}, {Name: "a", Steps: []tensor.Tensor{f32(1)}}}, Options{}, ErrInvalidColumn},
		{"duplicate name among many", manyCols(20, 17), Options{}, ErrInvalidColumn},
		{"dtype differs", []Column{{Name: "a", Steps: []tensor.Tensor{f32(2), tensor.MustFromSlice([]int32{1, 2})}}}, Options{}, ErrInvalidColumn},
		{"shape differs", []Column{{Name: "a", Steps: []tensor.Tensor{f32(2), f32(3)}}}, Options{}, ErrInvalidColumn},
		{"rank differs", []Column{{Name: "a", Steps: []tensor.Tensor{f32(1), tensor.Scalar(float32(0))}}}, Options{}, ErrInvalidColumn},
		{"invalid first step", []Column{{Name: "a", Steps: []tensor.Tensor{{DType: tensor.Int8, Shape: []int{2}, Data: []byte{1}}}}}, Options{}, tensor.ErrInvalid},
		{"invalid later step", []Column{{Name: "a", Steps: []tensor.Tensor{f32(1), {DType: tensor.Float32, Shape: []int{1}, Data: []byte{1}}}}}, Options{}, tensor.ErrInvalid},
		{"invalid dtype", []Column{{Name: "a", Steps: []tensor.Tensor{{DType: 99, Data: []byte{1}}}}}, Options{}, ErrInvalidColumn},
		{"rank too high", []Column{{Name: "a", Steps: []tensor.Tensor{deep}}}, Options{}, ErrInvalidColumn},
		{"too large", []Column{{Name: "a", Steps: bigSteps}}, Options{}, ErrTooLarge},
		{"too many steps", []Column{{Name: "a", Steps: make([]tensor.Tensor, MaxSteps+1)}}, Options{}, ErrInvalidColumn},
		{"bad level", []Column{{Name: "a", Steps: []tensor.Tensor{f32(1)}}}, Options{Level: 42}, nil},
		{"negative level", []Column{{Name: "a", Steps: []tensor.Tensor{f32(1)}}}, Options{Level: -1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			out, err := AppendEncode(dst, tc.cols, tc.opts)
			if err == nil {
				t.Fatal("AppendEncode succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "chunkcodec: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if string(out) != "prefix" {
				t.Errorf("dst changed to %q", out)
			}
		})
	}
	// Many distinct names are fine.
	if _, err := Encode(manyCols(20, -1), Options{}); err != nil {
		t.Error(err)
	}
}

func TestAppendEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	cols := []Column{randomColumn(r, "x", tensor.Int32, []int{64}, 8, true)}
	for _, level := range allLevels {
		prefix := []byte("some earlier bytes")
		out, err := AppendEncode(slices.Clone(prefix), cols, Options{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("prefix lost: %q", out[:len(prefix)])
		}
		alone, err := Encode(cols, Options{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[len(prefix):], alone) {
			t.Errorf("level %s: appended chunk differs from Encode's", level)
		}
		if _, err := Decode(out[len(prefix):]); err != nil {
			t.Fatal(err)
		}
	}

	// Reusing a buffer with garbage in it gives the same bytes.
	dirty := bytes.Repeat([]byte{0xAA}, 1<<16)
	odd := []Column{
		{Name: "a", Steps: []tensor.Tensor{tensor.MustFromSlice([]uint8{1, 2, 3})}},
		{Name: "b", Steps: []tensor.Tensor{tensor.MustFromSlice(make([]float64, 100))}},
	}
	for _, level := range allLevels {
		want, _ := Encode(odd, Options{Level: level})
		got, err := AppendEncode(dirty[:0], odd, Options{Level: level})
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("level %s: reused buffer gives % x, want % x (%v)", level, got, want, err)
		}
	}

	// Without compression, encoding into a large enough buffer does not
	// allocate.
	buf := make([]byte, 0, 1<<16)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = AppendEncode(buf[:0], cols, Options{Level: LevelNone})
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendEncode with LevelNone allocates %v times", allocs)
	}
}

func TestEncodeDoesNotModifyInput(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	cols := []Column{randomColumn(r, "x", tensor.Int64, []int{5}, 6, false)}
	saved := make([][]byte, len(cols[0].Steps))
	for i, s := range cols[0].Steps {
		saved[i] = slices.Clone(s.Data)
	}
	enc, err := Encode(cols, Options{DeltaEncode: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range cols[0].Steps {
		if !bytes.Equal(s.Data, saved[i]) {
			t.Fatalf("Encode modified step %d", i)
		}
	}
	encCopy := slices.Clone(enc)
	if _, err := Decode(enc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, encCopy) {
		t.Fatal("Decode modified its input")
	}
	// An uncompressed chunk is copied, not aliased.
	raw, _ := Encode(cols, Options{Level: LevelNone, DeltaEncode: true})
	c, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	clear(raw)
	checkChunk(t, c, cols)
}

func TestStepViews(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	cols := []Column{
		randomColumn(r, "a", tensor.Uint8, []int{3}, 4, false),
		randomColumn(r, "b", tensor.Float64, []int{2}, 4, false),
		randomColumn(r, "c", tensor.Int16, []int{}, 4, false),
	}
	enc, err := Encode(cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for col := range cols {
		b := c.Batched(col)
		if uintptr(unsafe.Pointer(unsafe.SliceData(b.Data)))%8 != 0 {
			t.Errorf("column %d data is not 8-byte aligned", col)
		}
		for i := range c.NumSteps() {
			s := c.Step(col, i)
			if unsafe.SliceData(s.Data) != &b.Data[i*len(s.Data)] {
				t.Errorf("Step(%d, %d) is not a view into the batched tensor", col, i)
			}
			if cap(s.Data) != len(s.Data) {
				t.Errorf("Step(%d, %d) has spare capacity: appending would clobber the next step", col, i)
			}
		}
	}
	if got := c.Index("nope"); got != -1 {
		t.Errorf("Index(nope) = %d", got)
	}
	for _, f := range []func(){
		func() { c.Step(0, 4) },
		func() { c.Step(0, -1) },
		func() { c.Step(3, 0) },
		func() { c.Batched(-1) },
		func() { c.Info(3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic for an out-of-range index")
				}
			}()
			f()
		}()
	}
}

func TestHeaderSizePrediction(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	cols := []Column{
		randomColumn(r, strings.Repeat("n", 200), tensor.Uint8, []int{300, 2}, 130, false),
		randomColumn(r, "b", tensor.Float64, []int{}, 130, false),
	}
	lay, rawSize, hdrSize, err := planEncode(nil, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(appendHeader(nil, cols, lay, rawSize, 0)); got != hdrSize {
		t.Errorf("header is %d bytes, predicted %d", got, hdrSize)
	}
}

func TestChecksumDetectsEveryFlip(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	cols := []Column{
		randomColumn(r, "obs", tensor.Float32, []int{8}, 4, true),
		randomColumn(r, "act", tensor.Int32, []int{2}, 4, true),
	}
	for _, level := range []Level{LevelNone, LevelDefault} {
		enc, err := Encode(cols, Options{Level: level, DeltaEncode: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range enc {
			for bit := range 8 {
				bad := slices.Clone(enc)
				bad[i] ^= 1 << bit
				_, err := Decode(bad)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("level %s: flipping bit %d of byte %d: error %v, want ErrCorrupt", level, bit, i, err)
				}
				// Past the magic and version, the checksum catches it.
				if i > len(magic) && !errors.Is(err, ErrChecksum) {
					t.Fatalf("level %s: flipping bit %d of byte %d: error %v, want ErrChecksum", level, bit, i, err)
				}
				if _, err := ParseHeader(bad); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ParseHeader missed a flip of byte %d: %v", i, err)
				}
			}
		}
		bad := slices.Clone(enc)
		bad[len(bad)/2] ^= 0x10
		_, err = Decode(bad)
		if err == nil || !strings.HasPrefix(err.Error(), "chunkcodec: checksum mismatch") {
			t.Errorf("error = %v, want it to start with %q", err, "chunkcodec: checksum mismatch")
		}
	}
}

func TestTruncationAndExtension(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	cols := []Column{randomColumn(r, "x", tensor.Float64, []int{16}, 5, true)}
	for _, level := range []Level{LevelNone, LevelFastest} {
		enc, err := Encode(cols, Options{Level: level})
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(enc) {
			if _, err := Decode(enc[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("level %s: truncated to %d of %d bytes: error %v", level, n, len(enc), err)
			}
		}
		for _, extra := range [][]byte{{0}, []byte("trailing"), enc} {
			if _, err := Decode(append(slices.Clone(enc), extra...)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("level %s: %d extra bytes: error %v", level, len(extra), err)
			}
		}
	}
}

func TestDecodeLimit(t *testing.T) {
	cols := []Column{{Name: "x", Steps: []tensor.Tensor{{DType: tensor.Float32, Shape: []int{1000}, Data: make([]byte, 4000)}}}}
	enc, err := Encode(cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeWithLimit(enc, 3999); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 3999: %v, want ErrTooLarge", err)
	}
	// The limit applies before the payload is looked at.
	huge := craft(cat(hdr(flagCompressed, 1<<10, 1, MaxRawSize), desc("x", tensor.Uint8, 0, 1<<20), []byte("whatever")))
	if _, err := DecodeWithLimit(huge, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge chunk: %v, want ErrTooLarge", err)
	}
	if _, err := Decode(huge); !errors.Is(err, ErrCorrupt) {
		t.Errorf("huge chunk with the default limit: %v, want ErrCorrupt (it cannot inflate that far)", err)
	}
	for _, limit := range []int{4000, 0, -1, math.MaxInt} {
		if _, err := DecodeWithLimit(enc, limit); err != nil {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
}

// craft returns body followed by its checksum, so tests can build chunks the
// encoder would never make.
func craft(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(slices.Clone(body), crc32.Checksum(body, castagnoli))
}

// hdr builds a header: flags, steps, columns, raw size.
func hdr(flags byte, steps, ncols, raw uint64) []byte {
	b := append([]byte(magic), Version, flags)
	b = binary.AppendUvarint(b, steps)
	b = binary.AppendUvarint(b, ncols)
	return binary.AppendUvarint(b, raw)
}

// desc builds a column descriptor.
func desc(name string, dt tensor.DType, cflags byte, dims ...uint64) []byte {
	b := binary.AppendUvarint(nil, uint64(len(name)))
	b = append(b, name...)
	b = append(b, byte(dt), cflags)
	b = binary.AppendUvarint(b, uint64(len(dims)))
	for _, d := range dims {
		b = binary.AppendUvarint(b, d)
	}
	return b
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestDecodeHostile(t *testing.T) {
	zstdOf := func(b []byte) []byte {
		enc, err := encoderFor(LevelDefault)
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeAll(b, nil)
	}
	valid := cat(hdr(0, 2, 1, 8), desc("x", tensor.Int32, 0), make([]byte, 8))
	if _, err := Decode(craft(valid)); err != nil {
		t.Fatalf("the valid template fails: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"bad magic", craft(cat([]byte("XXXX"), valid[4:])), ErrCorrupt},
		{"future version", craft(cat(valid[:4], []byte{2}, valid[5:])), ErrCorrupt},
		{"no checksum", valid, ErrChecksum},
		{"unknown flags", craft(cat(hdr(0x80, 2, 1, 8), desc("x", tensor.Int32, 0), make([]byte, 8))), ErrCorrupt},
		{"zero steps", craft(cat(hdr(0, 0, 1, 0), desc("x", tensor.Int32, 0))), ErrCorrupt},
		{"zero columns", craft(cat(hdr(0, 2, 0, 0), make([]byte, 8))), ErrCorrupt},
		{"too many columns", craft(cat(hdr(0, 2, MaxColumns+1, 8), desc("x", tensor.Int32, 0))), ErrCorrupt},
		{"columns beyond input", craft(cat(hdr(0, 2, 5000, 8), desc("x", tensor.Int32, 0), make([]byte, 8))), ErrCorrupt},
		{"too many steps", craft(cat(hdr(0, MaxSteps+1, 1, 0), desc("x", tensor.Int32, 0, 0))), ErrCorrupt},
		{"huge uvarint", craft(cat(hdr(0, math.MaxUint64, 1, 8), desc("x", tensor.Int32, 0), make([]byte, 8))), ErrCorrupt},
		{"overlong uvarint", craft(cat(valid[:6], bytes.Repeat([]byte{0x80}, 11), []byte{1}, make([]byte, 10))), ErrCorrupt},
		{"raw size over max", craft(cat(hdr(0, 1, 1, MaxRawSize+1), desc("x", tensor.Uint8, 0, MaxRawSize+1))), ErrCorrupt},
		{"raw size mismatch", craft(cat(hdr(0, 2, 1, 16), desc("x", tensor.Int32, 0), make([]byte, 16))), ErrCorrupt},
		{"payload too short", craft(cat(hdr(0, 2, 1, 8), desc("x", tensor.Int32, 0), make([]byte, 7))), ErrCorrupt},
		{"payload too long", craft(cat(hdr(0, 2, 1, 8), desc("x", tensor.Int32, 0), make([]byte, 9))), ErrCorrupt},
		{"empty name", craft(cat(hdr(0, 2, 1, 8), desc("", tensor.Int32, 0), make([]byte, 8))), ErrCorrupt},
		{"long name", craft(cat(hdr(0, 1, 1, 1), desc(strings.Repeat("n", MaxNameLen+1), tensor.Uint8, 0), make([]byte, 1))), ErrCorrupt},
		{"name beyond input", craft(cat(hdr(0, 1, 1, 1), []byte{100, 'a', 'b', 'c', 'd', 'e'})), ErrCorrupt},
		{"duplicate names", craft(cat(hdr(0, 1, 2, 9), desc("x", tensor.Uint8, 0), desc("x", tensor.Uint8, 0), make([]byte, 9))), ErrCorrupt},
		{"invalid dtype", craft(cat(hdr(0, 1, 1, 1), desc("x", 0, 0), make([]byte, 1))), ErrCorrupt},
		{"unknown dtype", craft(cat(hdr(0, 1, 1, 1), desc("x", 77, 0), make([]byte, 1))), ErrCorrupt},
		{"unknown column flags", craft(cat(hdr(0, 1, 1, 1), desc("x", tensor.Uint8, 2), make([]byte, 1))), ErrCorrupt},
		{"delta on float", craft(cat(hdr(0, 1, 1, 4), desc("x", tensor.Float32, colFlagDelta, 1), make([]byte, 4))), ErrCorrupt},
		{"delta on scalar", craft(cat(hdr(0, 1, 1, 4), desc("x", tensor.Int32, colFlagDelta), make([]byte, 4))), ErrCorrupt},
		{"rank too high", craft(cat(hdr(0, 1, 1, 1), desc("x", tensor.Uint8, 0, slices.Repeat([]uint64{1}, MaxRank+1)...), make([]byte, 1))), ErrCorrupt},
		{"rank beyond input", craft(cat(hdr(0, 1, 1, 1), []byte{1, 'x', byte(tensor.Uint8), 0, 30, 1})), ErrCorrupt},
		{"dimension too large", craft(cat(hdr(0, 1, 1, 0), desc("x", tensor.Uint8, 0, 0, 1<<40))), ErrCorrupt},
		{"step too large", craft(cat(hdr(0, 1, 1, 0), desc("x", tensor.Uint8, 0, 1<<20, 1<<20))), ErrCorrupt},
		{"columns exceed raw size", craft(cat(hdr(0, MaxSteps, 1, 8), desc("x", tensor.Uint64, 0, 1<<30))), ErrCorrupt},
		{"zstd bomb", craft(cat(hdr(flagCompressed, 1<<10, 1, 1<<30), desc("x", tensor.Uint8, 0, 1<<20), zstdOf(make([]byte, 1000)))), ErrCorrupt},
		{"zstd garbage", craft(cat(hdr(flagCompressed, 2, 1, 8), desc("x", tensor.Int32, 0), []byte("not zstd at all"))), ErrCorrupt},
		{"zstd inflates short", craft(cat(hdr(flagCompressed, 1, 1, 4096), desc("x", tensor.Uint8, 0, 4096), zstdOf(make([]byte, 4095)))), ErrCorrupt},
		{"zstd inflates long", craft(cat(hdr(flagCompressed, 1, 1, 4096), desc("x", tensor.Uint8, 0, 4096), zstdOf(make([]byte, 4097)))), ErrCorrupt},
		{"zstd two frames too long", craft(cat(hdr(flagCompressed, 1, 1, 4096), desc("x", tensor.Uint8, 0, 4096), zstdOf(make([]byte, 4096)), zstdOf(make([]byte, 100)))), ErrCorrupt},
		{"zstd trailing garbage", craft(cat(hdr(flagCompressed, 1, 1, 4096), desc("x", tensor.Uint8, 0, 4096), zstdOf(make([]byte, 4096)), []byte{1, 2, 3})), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Decode(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, %v; want %v", c, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "chunkcodec: ") {
				t.Errorf("error %q has no package prefix", err)
			}
		})
	}

	// Hand-made but valid chunks decode, e.g. two zstd frames that together
	// inflate to the right size, and a chunk whose step shape has a zero.
	ok := [][]byte{
		craft(cat(hdr(flagCompressed, 1, 1, 4096), desc("x", tensor.Uint8, 0, 4096), zstdOf(make([]byte, 4000)), zstdOf(make([]byte, 96)))),
		craft(cat(hdr(0, 3, 2, 0), desc("x", tensor.Float64, 0, 5, 0), desc("y", tensor.Int8, colFlagDelta, 0))),
		craft(cat(hdr(0, MaxSteps, 1, 0), desc("x", tensor.Int64, colFlagDelta, 0))),
	}
	for i, b := range ok {
		if _, err := Decode(b); err != nil {
			t.Errorf("valid chunk %d: %v", i, err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			var buf []byte
			for i := range 20 {
				cols := []Column{
					randomColumn(r, "a", tensor.Int32, []int{1 + i%5}, 1+i%7, true),
					randomColumn(r, "b", tensor.Float32, []int{3}, 1+i%7, false),
				}
				var err error
				buf, err = AppendEncode(buf[:0], cols, Options{Level: allLevels[(g+i)%len(allLevels)], DeltaEncode: i%2 == 0})
				if err != nil {
					t.Error(err)
					return
				}
				c, err := Decode(buf)
				if err != nil {
					t.Error(err)
					return
				}
				for col := range cols {
					for s := range cols[col].Steps {
						if !c.Step(col, s).Equal(cols[col].Steps[s]) {
							t.Errorf("goroutine %d iteration %d: column %d step %d differs", g, i, col, s)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestLevelString(t *testing.T) {
	for l, want := range map[Level]string{LevelDefault: "default", LevelFastest: "fastest", LevelBetter: "better", LevelBest: "best", LevelNone: "none", 17: "level(17)", -1: "level(-1)"} {
		if got := l.String(); got != want {
			t.Errorf("Level(%d).String() = %q, want %q", int(l), got, want)
		}
	}
}
