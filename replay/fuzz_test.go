package replay

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/recall-rl/recall/table"
)

// The fuzz targets feed arbitrary bytes to each message decoder. A decoder
// may reject its input, but must never panic, hang or allocate beyond the
// input's size; every accepted request must re-encode.

func seedChunk() *table.Chunk {
	return &table.Chunk{Key: 7, EpisodeID: 3, Start: 10, Length: 2, Data: []byte("payload"),
		Columns: []table.ColumnSpec{{Name: "obs", DType: 9, Shape: []int{2, 3}}}}
}

func FuzzParseInsertRequest(f *testing.F) {
	c := seedChunk()
	items := []insertItem{{table: "t", key: 1, priority: 0.5, trajectory: []table.TrajectoryColumn{
		{Slices: []table.ChunkSlice{{ChunkKey: 7, Offset: 0, Length: 2}}, Squeeze: false},
		{Slices: []table.ChunkSlice{{ChunkKey: 7, Offset: 1, Length: 1, Index: 0}}, Squeeze: true},
	}}}
	f.Add(buildInsertRequest([]*table.Chunk{c}, items, []uint64{7}).FinishedBytes())
	f.Add(buildInsertRequest(nil, nil, nil).FinishedBytes())
	empty := seedChunk()
	empty.Data = nil
	f.Add(outOfLineBytes(f, buildInsertMessage([]*table.Chunk{c, empty, seedChunk()}, nil, items, nil, 0)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseInsertRequest(b)
		if err != nil {
			return
		}
		for _, enc := range [][]byte{
			buildInsertRequest(req.chunks, req.items, req.release).FinishedBytes(),
			outOfLineBytes(t, buildInsertMessage(req.chunks, nil, req.items, req.release, 0)),
		} {
			again, err := parseInsertRequest(enc)
			if err != nil || len(again.items) != len(req.items) || len(again.chunks) != len(req.chunks) {
				t.Fatalf("re-encoded request does not parse the same: %v", err)
			}
		}
	})
}

func FuzzParseSampleRequest(f *testing.F) {
	f.Add(buildSampleRequest("t", 10, time.Second, 5).FinishedBytes())
	f.Add(buildSampleRequest("", 1, 0, 0).FinishedBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseSampleRequest(b)
		if err == nil && req.credit < 0 {
			t.Fatalf("negative credit accepted: %d", req.credit)
		}
	})
}

func FuzzParseMutateRequest(f *testing.F) {
	f.Add(buildMutateRequest("t", map[uint64]float64{1: 2, 3: math.Inf(1)}, []uint64{4, 5}).FinishedBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseMutateRequest(b)
		if err != nil {
			return
		}
		if _, err := parseMutateRequest(buildMutateRequest(req.table, req.updates, req.deletes).FinishedBytes()); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseResetRequest(f *testing.F) {
	f.Add(buildResetRequest("table").FinishedBytes())
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parseResetRequest(b) })
}

// FuzzDecodeSampleResponse feeds the client's sample decoder. A decoded
// response cannot be re-encoded (its samples are assembled columns), so
// instead a decoder that has decoded every earlier input must decode each
// one exactly as a fresh decoder does: its scratch space carries nothing
// over.
func FuzzDecodeSampleResponse(f *testing.F) {
	c := seedChunk()
	s := table.Sampled{Info: table.SampleInfo{Key: 1, Priority: 1, Probability: 0.5, TimesSampled: 2, TableSize: 9, InsertedAt: time.Unix(5, 0)},
		Trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 7, Length: 2}}}}, Chunks: []*table.Chunk{c}}
	f.Add(buildSampleResponse([]table.Sampled{s, s}).FinishedBytes())
	f.Add(buildSampleResponse(mixedSamples(f)).FinishedBytes())
	f.Add(sampleResponseBytes(f, []table.Sampled{s, s}))
	f.Add(sampleResponseBytes(f, mixedSamples(f)))
	var reused responseDecoder
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := reused.decode(b)
		var fresh responseDecoder
		want, werr := fresh.decode(b)
		if (err == nil) != (werr == nil) || len(got) != len(want) {
			t.Fatalf("reused decoder: %d samples, %v; fresh: %d samples, %v", len(got), err, len(want), werr)
		}
		for i := range got {
			g, w := got[i], want[i]
			if fmt.Sprint(g.Info) != fmt.Sprint(w.Info) || !slices.Equal(g.Names, w.Names) ||
				!slices.EqualFunc(g.Columns, w.Columns, Tensor.Equal) {
				t.Fatalf("sample %d: reused decoder %+v, fresh %+v", i, g, w)
			}
		}
	})
}

func FuzzParseResponses(f *testing.F) {
	f.Add(buildInsertResponse([]uint64{1, 2, 3}).FinishedBytes())
	f.Add(buildServerInfo(ServerInfo{TablesStateID: "x", Tables: []TableInfo{{Name: "t", Size: 3,
		Signature: &table.Signature{Columns: []table.ColumnSpec{{Name: "a", DType: 1, Shape: []int{1}}}}}}}).FinishedBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseInsertResponse(b)
		_, _ = parseServerInfo(b)
	})
}
