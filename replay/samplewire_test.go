package replay

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/table"
)

// buildSampleResponse builds a response with its chunk payloads inline.
func buildSampleResponse(samples []table.Sampled) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(sampleResponseSize(samples, math.MaxInt))
	var w sampleResponseWriter
	w.build(b, samples, math.MaxInt, nil)
	return b
}

// sampleResponseBytes is a response as Server.Sample sends it, with every
// chunk payload out of line however small, as the client receives it.
func sampleResponseBytes(t testing.TB, samples []table.Sampled) []byte {
	t.Helper()
	m := &outOfLineMessage{fb: getBuilder()}
	var w sampleResponseWriter
	m.payloads, _ = w.build(m.fb.b, samples, 0, nil)
	if len(m.payloads) == 0 {
		t.Fatal("no payload out of line")
	}
	return outOfLineBytes(t, m)
}

// The helpers below are a plain reference for responseDecoder: they
// assemble a table.Sampled's columns with chunkcodec.Decode and a linear
// chunk lookup.

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

// sampledChunks is the chunkSource of one table.Sampled.
type sampledChunks struct {
	s   *table.Sampled
	dec decodedChunks
}

func (sc sampledChunks) chunk(key uint64) (*chunkcodec.Chunk, bool, error) {
	for _, c := range sc.s.Chunks {
		if c.Key == key {
			dc, err := sc.dec.get(c)
			return dc, true, err
		}
	}
	return nil, false, nil
}

// assemble builds an item's columns from decoded chunks: each column is the
// concatenation of its slices along the step axis, squeezed to a single
// step when the column says so. Column names come from the chunks.
func assemble(s *table.Sampled, dec decodedChunks) (cols []Tensor, names []string, err error) {
	cols = make([]Tensor, len(s.Trajectory))
	names = make([]string, len(s.Trajectory))
	var shapes block[int]
	if err := assembleColumns(s.Trajectory, cols, names, &shapes, sampledChunks{s, dec}); err != nil {
		return nil, nil, err
	}
	return cols, names, nil
}

// testChunk encodes n steps of one float32 column of width w; each value is
// key*1000 + step*10 + element.
func testChunk(t testing.TB, key uint64, n, w int, opts chunkcodec.Options) *table.Chunk {
	t.Helper()
	steps := make([]tensor.Tensor, n)
	for s := range steps {
		v := make([]float32, w)
		for e := range v {
			v[e] = float32(key*1000) + float32(s*10+e)
		}
		steps[s] = tensor.MustFromSlice(v)
	}
	data, err := chunkcodec.Encode([]chunkcodec.Column{{Name: "obs", Steps: steps}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &table.Chunk{Key: key, EpisodeID: key / 10, Start: int64(key % 10), Length: int32(n), Data: data}
}

// mixedSamples returns samples that cover the response layouts: one chunk
// per sample, chunks shared between samples and out of first-use order, a
// sample twice, columns of several slices, squeezed columns and compressed
// chunks.
func mixedSamples(t testing.TB) []table.Sampled {
	raw := chunkcodec.Options{Level: chunkcodec.LevelNone}
	c1, c2, c3 := testChunk(t, 1, 1, 4, raw), testChunk(t, 2, 3, 4, raw), testChunk(t, 3, 2, 4, raw)
	zc := testChunk(t, 4, 4, 64, chunkcodec.Options{}) // regular values: compressed
	info := func(k uint64) table.SampleInfo {
		return table.SampleInfo{Key: k, Priority: float64(k) / 2, Probability: 0.25, TimesSampled: int32(k), TableSize: 9, InsertedAt: time.Unix(0, int64(k)*1e9)}
	}
	one := func(c *table.Chunk, off, n int32, squeeze bool) table.TrajectoryColumn {
		return table.TrajectoryColumn{Slices: []table.ChunkSlice{{ChunkKey: c.Key, Offset: off, Length: n}}, Squeeze: squeeze}
	}
	s1 := table.Sampled{Info: info(10), Trajectory: []table.TrajectoryColumn{one(c1, 0, 1, false)}, Chunks: []*table.Chunk{c1}}
	s2 := table.Sampled{Info: info(11), Trajectory: []table.TrajectoryColumn{
		{Slices: []table.ChunkSlice{{ChunkKey: 2, Offset: 1, Length: 2}, {ChunkKey: 3, Offset: 0, Length: 2}}},
		one(c2, 2, 1, true),
		one(c1, 0, 1, true),
	}, Chunks: []*table.Chunk{c2, c3, c1}}
	s3 := table.Sampled{Info: info(12), Trajectory: []table.TrajectoryColumn{one(c3, 1, 1, false), one(zc, 1, 3, false)}, Chunks: []*table.Chunk{c3, zc}}
	return []table.Sampled{s1, s2, s1, s3, s2}
}

func TestResponseDecoderMatchesAssemble(t *testing.T) {
	samples := mixedSamples(t)
	var rw sampleResponseWriter
	var d responseDecoder
	for round := range 4 { // scratch space is reused across responses
		// Payloads inline and, as the server sends them, out of line.
		var buf []byte
		if round%2 == 0 {
			b := getBuilder().b
			rw.build(b, samples, math.MaxInt, nil)
			buf = slices.Clone(b.FinishedBytes())
		} else {
			buf = sampleResponseBytes(t, samples)
		}
		got, err := d.decode(buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(samples) {
			t.Fatalf("round %d: %d samples, want %d", round, len(got), len(samples))
		}
		for i := range samples {
			cols, names, err := assemble(&samples[i], decodedChunks{})
			if err != nil {
				t.Fatal(err)
			}
			g := got[i]
			if !g.Info.InsertedAt.Equal(samples[i].Info.InsertedAt) {
				t.Errorf("sample %d: inserted at %v, want %v", i, g.Info.InsertedAt, samples[i].Info.InsertedAt)
			}
			g.Info.InsertedAt = samples[i].Info.InsertedAt
			if g.Info != samples[i].Info {
				t.Errorf("sample %d: info %+v, want %+v", i, g.Info, samples[i].Info)
			}
			if !slices.Equal(g.Names, names) || len(g.Columns) != len(cols) {
				t.Fatalf("sample %d: names %v, want %v", i, g.Names, names)
			}
			for c := range cols {
				if !g.Columns[c].Equal(cols[c]) {
					t.Errorf("sample %d column %d: %v%v, want %v%v", i, c, g.Columns[c].DType, g.Columns[c].Shape, cols[c].DType, cols[c].Shape)
				}
			}
		}
		// A single-slice column of an uncompressed chunk is a view into
		// the message; a compressed one is not.
		in := func(b []byte) bool {
			p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
			return p >= lo && p < lo+uintptr(len(buf))
		}
		if !in(got[0].Columns[0].Data) || in(got[3].Columns[1].Data) || in(got[1].Columns[0].Data) {
			t.Error("columns do not share the message as expected")
		}
		// Shapes are separate: appending to one does not change another.
		_ = append(got[0].Columns[0].Shape, 99)
		if got[2].Columns[0].Shape[0] != 1 || len(got[1].Columns[1].Shape) != 1 {
			t.Errorf("shapes %v %v", got[2].Columns[0].Shape, got[1].Columns[1].Shape)
		}
		for _, c := range d.chunks[:cap(d.chunks)] {
			if c.data != nil || c.decoded || c.dc.NumColumns() != 0 {
				t.Fatal("decoder keeps a reference to the message")
			}
		}
		if d.arena.col.Table().Bytes != nil {
			t.Fatal("decoder's trajectory scratch keeps a reference to the message")
		}
	}
}

func TestResponseDecoderErrors(t *testing.T) {
	samples := mixedSamples(t)
	// A sample using a chunk the response lacks: the samples before it
	// come back with the error.
	bad := slices.Clone(samples[:2])
	bad[1].Trajectory = slices.Clone(bad[1].Trajectory)
	bad[1].Trajectory[1] = table.TrajectoryColumn{Slices: []table.ChunkSlice{{ChunkKey: 99, Length: 1}}}
	var d responseDecoder
	got, err := d.decode(buildSampleResponse(bad).FinishedBytes())
	if !errors.Is(err, ErrInvalidArgument) || len(got) != 1 {
		t.Fatalf("missing chunk: %d samples, %v", len(got), err)
	}
	// A slice outside its chunk.
	bad[1].Trajectory[1] = table.TrajectoryColumn{Slices: []table.ChunkSlice{{ChunkKey: 2, Offset: 2, Length: 2}}}
	if _, err := d.decode(buildSampleResponse(bad).FinishedBytes()); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("slice outside its chunk: %v", err)
	}
	// A corrupt chunk.
	c := *samples[0].Chunks[0]
	c.Data = slices.Clone(c.Data)
	c.Data[len(c.Data)-1] ^= 1
	s := samples[0]
	s.Chunks = []*table.Chunk{&c}
	if _, err := d.decode(buildSampleResponse([]table.Sampled{s}).FinishedBytes()); !errors.Is(err, chunkcodec.ErrChecksum) {
		t.Fatalf("corrupt chunk: %v", err)
	}
	// Truncated and garbled messages fail without panicking.
	msg := buildSampleResponse(samples).FinishedBytes()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		m := slices.Clone(msg[:r.IntN(len(msg)+1)])
		if i%2 == 1 && len(m) > 0 {
			for range 1 + r.IntN(4) {
				m[r.IntN(len(m))] = byte(r.Uint32())
			}
		}
		_, _ = d.decode(m)
	}
	// And the decoder still works afterwards.
	if got, err := d.decode(slices.Clone(msg)); err != nil || len(got) != len(samples) {
		t.Fatalf("after garbage: %d samples, %v", len(got), err)
	}
}

func TestKeySet(t *testing.T) {
	var s keySet
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		n := r.IntN(200)
		s.reset(n)
		want := map[uint64]bool{}
		for range n {
			k := r.Uint64N(uint64(max(1, n/2))) // duplicates
			if round%3 == 0 {
				k <<= 32 // keys differing only in high bits
			}
			if got := s.add(k); got != !want[k] {
				t.Fatalf("round %d: add(%d) = %v, seen before %v", round, k, got, want[k])
			}
			want[k] = true
		}
	}
	// Generation wrap-around.
	s.reset(4)
	s.gen = ^uint32(0)
	s.add(5)
	s.reset(4)
	if !s.add(5) {
		t.Fatal("key kept over a wrapped reset")
	}
}

// TestSampleResponseAllocs pins the steady-state allocations: none to
// build a response into a big enough builder; per response on the client
// a few blocks (none per chunk stored uncompressed).
func TestSampleResponseAllocs(t *testing.T) {
	const n = 64
	samples := make([]table.Sampled, n)
	for i := range samples {
		c := testChunk(t, uint64(i+1), 1, 256, chunkcodec.Options{})
		samples[i] = table.Sampled{Info: table.SampleInfo{Key: uint64(i)}, Trajectory: whole(c), Chunks: []*table.Chunk{c}}
	}
	var rw sampleResponseWriter
	b := getBuilder().b
	rw.build(b, samples, math.MaxInt, nil)
	if a := testing.AllocsPerRun(50, func() { b.Reset(); rw.build(b, samples, math.MaxInt, nil) }); a != 0 {
		t.Errorf("build: %v allocations, want 0", a)
	}
	payloads := make([][]byte, 0, n)
	if a := testing.AllocsPerRun(50, func() { b.Reset(); payloads, _ = rw.build(b, samples, 0, payloads[:0]) }); a != 0 {
		t.Errorf("build out of line: %v allocations, want 0", a)
	}
	b.Reset()
	rw.build(b, samples, math.MaxInt, nil)
	msg := slices.Clone(b.FinishedBytes())
	var d responseDecoder
	if _, err := d.decode(msg); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(50, func() { _, _ = d.decode(msg) }); a > 5 {
		t.Errorf("decode: %v allocations, want ≤ 5", a)
	}
}

func BenchmarkSampleResponse(b *testing.B) {
	for _, size := range []int{1 << 10, 256 << 10} {
		n := max(1, min(64, (1<<20)/size))
		samples := make([]table.Sampled, n)
		for i := range samples {
			c := testChunk(b, uint64(i+1), 1, size/4, chunkcodec.Options{})
			samples[i] = table.Sampled{Info: table.SampleInfo{Key: uint64(i)}, Trajectory: whole(c), Chunks: []*table.Chunk{c}}
		}
		name := fmt.Sprintf("item=%dKiB", size>>10)
		b.Run("build/"+name, func(b *testing.B) {
			var rw sampleResponseWriter
			var payloads [][]byte
			b.SetBytes(int64(n * size))
			b.ReportAllocs()
			for b.Loop() { // as the server builds: large payloads out of line
				p := getBuilder()
				payloads, _ = rw.build(p.b, samples, minOutOfLine, payloads[:0])
				p.Put(nil)
			}
		})
		msg := buildSampleResponse(samples).FinishedBytes()
		b.Run("decode/"+name, func(b *testing.B) {
			var d responseDecoder
			b.SetBytes(int64(n * size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSampleStreamSplitsWindow checks that the server sends a window of
// credit in samplePipelineDepth responses, never more samples than granted.
func TestSampleStreamSplitsWindow(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chunks []*table.Chunk
	var items []insertItem
	for k := uint64(1); k <= 20; k++ {
		ch := encodeChunk(t, k, 1, "x", tensor.Scalar(float32(k)))
		chunks = append(chunks, ch)
		items = append(items, insertItem{table: "t", key: k, priority: 1, trajectory: whole(ch)})
	}
	if _, err := rawInsert(ctx, c, chunks, items, nil); err != nil {
		t.Fatal(err)
	}
	st, err := c.rpc.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const window = 4 * samplePipelineDepth
	if err := st.Send(buildSampleRequest("t", window, 0, 0)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var d responseDecoder
	for got := 0; got < window; {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.decode(messageBytes(resp))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(out))
		got += len(out)
	}
	for _, n := range sizes {
		if n > window/samplePipelineDepth {
			t.Fatalf("response sizes %v: more than %d samples in one", sizes, window/samplePipelineDepth)
		}
	}
	if n := ts.srv.Table("t").Info().Limiter.Samples; n != window {
		t.Fatalf("server sampled %d, granted %d", n, window)
	}
}
