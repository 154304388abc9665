package replay

import (
	"reflect"
	"testing"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/table"
)

// FuzzCheckpointRecords feeds arbitrary bytes to every record decoder of
// checkpoints and durable stores: they must return an error, never panic,
// and whatever they accept must encode back to the same bytes.
func FuzzCheckpointRecords(f *testing.F) {
	c := &table.Chunk{Key: 7, EpisodeID: 3, Start: 2, Length: 2, Data: []byte("payload"),
		Columns: []table.ColumnSpec{{Name: "obs", DType: tensor.Float32, Shape: []int{2, 3}}}}
	f.Add(append(appendChunkHeader(nil, c), c.Data...))
	it := itemRecord{Seq: 9, InsertedAt: 12345, Trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 7, Offset: 1, Length: 1}}, Squeeze: true}}}
	f.Add(it.encode())
	f.Add(priorityRecord{Priority: 2.5, TimesSampled: 4}.encode())
	st := tableState{Limiter: ratelimit.State{Inserts: 5, Samples: 6, Deletes: 1}, NumDeletedEpisodes: 1, NumUniqueSamples: 2, NextSeq: 5}
	f.Add(st.encode())
	f.Add(chunkLoc{seg: 1, off: 4096, n: 100, crc: 0xdeadbeef}.encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Decoders accept non-minimal varints, so the check is that what
		// they accept survives an encode and decode unchanged.
		if c, _, err := decodeChunk(1, b, true); err == nil {
			again, _, err := decodeChunk(1, append(appendChunkHeader(nil, c), c.Data...), true)
			if err != nil || !reflect.DeepEqual(again, c) {
				t.Errorf("chunk %x: %+v re-decodes as %+v, %v", b, c, again, err)
			}
		}
		if r, err := decodeItem(b); err == nil {
			if again, err := decodeItem(r.encode()); err != nil || !reflect.DeepEqual(again, r) {
				t.Errorf("item %x: %+v re-decodes as %+v, %v", b, r, again, err)
			}
		}
		if r, err := decodePriority(b); err == nil {
			if again, err := decodePriority(r.encode()); err != nil || again != r {
				t.Errorf("priority %x: %+v re-decodes as %+v, %v", b, r, again, err)
			}
		}
		if s, err := decodeTableState(b); err == nil {
			if again, err := decodeTableState(s.encode()); err != nil || again != s {
				t.Errorf("table state %x: %+v re-decodes as %+v, %v", b, s, again, err)
			}
		}
		if l, err := decodeChunkLoc(b); err == nil {
			if again, err := decodeChunkLoc(l.encode()); err != nil || again != l {
				t.Errorf("chunk pointer %x: %+v re-decodes as %+v, %v", b, l, again, err)
			}
		}
		_, _ = decodeAsOf(b)
	})
}
