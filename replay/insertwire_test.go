package replay

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/table"
)

// buildInsertRequest writes an insert request with every chunk payload
// inline, as older clients send it.
func buildInsertRequest(chunks []*table.Chunk, items []insertItem, release []uint64) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(1024)
	buildInsert(b, chunks, items, release, nil)
	return b
}

// outOfLineBytes is what the receiver gets for m: the FlatBuffer
// followed by the payloads.
func outOfLineBytes(t testing.TB, m *outOfLineMessage) []byte {
	t.Helper()
	bs, err := codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Free()
	return bs.Materialize()
}

func TestInsertMessageOutOfLinePayloads(t *testing.T) {
	spec := []table.ColumnSpec{{Name: "obs", DType: 9, Shape: []int{2}}}
	other := []table.ColumnSpec{{Name: "act", DType: 4}}
	chunks := []*table.Chunk{
		{Key: 1, EpisodeID: 5, Start: 0, Length: 1, Columns: spec, Data: []byte("first payload")},
		{Key: 2, EpisodeID: 5, Start: 0, Length: 1, Columns: other, Data: []byte("x")},
		{Key: 3, EpisodeID: 5, Start: 1, Length: 1, Columns: spec, Data: bytes.Repeat([]byte{7}, 3000)},
	}
	items := []insertItem{{table: "t", key: 9, priority: 2, trajectory: []table.TrajectoryColumn{
		{Slices: []table.ChunkSlice{{ChunkKey: 1, Length: 1}, {ChunkKey: 3, Length: 1}}},
		{Slices: []table.ChunkSlice{{ChunkKey: 2, Length: 1}}, Squeeze: true},
	}}}
	msg := outOfLineBytes(t, buildInsertMessage(chunks, nil, items, []uint64{4}, 0))
	mixed := outOfLineBytes(t, buildInsertMessage(chunks, nil, items, []uint64{4}, 2000)) // chunk 3 only
	inline := buildInsertRequest(chunks, items, []uint64{4}).FinishedBytes()
	cloned := make([]*table.Chunk, len(chunks))
	for i, c := range chunks {
		cc := *c
		cc.Columns = slices.Clone(c.Columns)
		cloned[i] = &cc
	}
	if n, m := len(inline), len(buildInsertRequest(cloned, items, []uint64{4}).FinishedBytes()); n >= m {
		t.Errorf("chunks sharing a spec list: %d bytes, with a spec list each %d: the lists are not shared", n, m)
	}
	for name, buf := range map[string][]byte{"out of line": msg, "mixed": mixed, "inline": inline} {
		req, err := parseInsertRequest(buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(req.chunks) != len(chunks) || len(req.items) != 1 || len(req.release) != 1 || req.release[0] != 4 {
			t.Fatalf("%s: parsed %d chunks, %d items, release %v", name, len(req.chunks), len(req.items), req.release)
		}
		for i, c := range req.chunks {
			want := chunks[i]
			if c.Key != want.Key || c.Start != want.Start || !bytes.Equal(c.Data, want.Data) ||
				len(c.Columns) != 1 || c.Columns[0].Name != want.Columns[0].Name {
				t.Errorf("%s: chunk %d = %+v, want %+v", name, i, c, want)
			}
			if cap(c.Data) != len(c.Data) {
				t.Errorf("%s: chunk %d data can be appended to in place", name, i)
			}
		}
	}
}

// TestInsertMessageBadPayloads: payload references that do not fit the
// message are rejected as malformed, never read out of bounds.
func TestInsertMessageBadPayloads(t *testing.T) {
	build := func(payloadSize uint64, inline []byte, off, n uint64) []byte {
		b := flatbuffers.NewBuilder(256)
		var data flatbuffers.UOffsetT
		if inline != nil {
			data = b.CreateByteVector(inline)
		}
		wire.ChunkStart(b)
		wire.ChunkAddKey(b, 1)
		wire.ChunkAddLength(b, 1)
		if inline != nil {
			wire.ChunkAddData(b, data)
		}
		wire.ChunkAddPayloadOffset(b, off)
		wire.ChunkAddPayloadLength(b, n)
		c := wire.ChunkEnd(b)
		cv := endOffsetVector(b, []flatbuffers.UOffsetT{c})
		wire.InsertRequestStart(b)
		wire.InsertRequestAddChunks(b, cv)
		wire.InsertRequestAddPayloadSize(b, payloadSize)
		b.Finish(wire.InsertRequestEnd(b))
		return append(b.FinishedBytes(), make([]byte, 16)...) // a 16-byte region
	}
	for _, tc := range []struct {
		name string
		buf  []byte
		ok   bool
	}{
		{"fits", build(16, nil, 4, 12), true},
		{"region larger than message", build(1<<20, nil, 0, 1), false},
		{"region swallows the flatbuffer", build(16+4, nil, 0, 1), false},
		{"past the region", build(16, nil, 8, 9), false},
		{"offset past the region", build(16, nil, 17, 1), false},
		{"huge length wraps", build(16, nil, 8, ^uint64(0)-4), false},
		{"both inline and out of line", build(16, []byte("abc"), 0, 4), false},
		{"offset without length", build(16, nil, 3, 0), false},
	} {
		req, err := parseInsertRequest(tc.buf)
		if tc.ok {
			if err != nil || len(req.chunks) != 1 || len(req.chunks[0].Data) != 12 {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", tc.name, err)
		}
	}
}
