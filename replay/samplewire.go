package replay

import (
	"fmt"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/table"
)

// This file holds the hot paths of the Sample stream: the server's
// response builder and the client's response decoder. Both keep their
// scratch space from one response to the next (one of each per stream), so
// that in the steady state a response costs the server no allocation and
// the client a handful per response plus one per chunk.

// --- server: building responses -------------------------------------------

// sampleResponseWriter builds SampleResponse messages. Not safe for
// concurrent use.
type sampleResponseWriter struct {
	chunkOffs []flatbuffers.UOffsetT
	itemOffs  []flatbuffers.UOffsetT
	colOffs   []flatbuffers.UOffsetT
	seen      keySet
}

// sampleResponseSize is an upper estimate of the size of the response
// holding samples whose chunk payloads under minOut bytes are inline: a
// builder of this size never grows while building it.
func sampleResponseSize(samples []table.Sampled, minOut int) int {
	size := 256 + 8*len(samples)
	for i := range samples {
		s := &samples[i]
		// SampleInfo, SampledItem and their vtables; each column's table,
		// vtable and slice vector; the chunk key vector; padding.
		size += 160 + 24*len(s.Trajectory) + 16*len(s.Chunks)
		for _, col := range s.Trajectory {
			size += 24 * len(col.Slices)
		}
		for _, c := range s.Chunks {
			// Chunk table and vtable, data vector header and padding.
			size += 80
			if len(c.Data) < minOut {
				size += len(c.Data)
			}
		}
	}
	return size
}

// build writes a response holding samples and, once each, the chunks they
// use into b, a reset builder. Chunk payloads of at least minOut bytes go
// out of line: they are appended to payloads, in the order of the
// response's payload region, for the caller to send after the FlatBuffer
// (see outOfLineMessage), instead of being copied into b (the server
// passes minOutOfLine; math.MaxInt keeps every payload inline). Chunks go
// out without their column specs: the chunk data describes its own
// columns, and clients read them from there. build also returns the chunk
// payload bytes of the samples (a chunk counted once per sample using it).
func (w *sampleResponseWriter) build(b *flatbuffers.Builder, samples []table.Sampled, minOut int, payloads [][]byte) (_ [][]byte, payload int) {
	if need := sampleResponseSize(samples, minOut); len(b.Bytes) < need {
		// Grow once, before writing, instead of doubling (and copying)
		// on the way.
		b.Bytes = make([]byte, need)
		b.Reset()
	}
	nrefs := 0
	for i := range samples {
		nrefs += len(samples[i].Chunks)
	}
	w.seen.reset(nrefs)
	w.chunkOffs = w.chunkOffs[:0]
	var region int64
	for i := range samples {
		for _, c := range samples[i].Chunks {
			payload += len(c.Data)
			if !w.seen.add(c.Key) {
				continue
			}
			at := int64(-1)
			if len(c.Data) >= minOut {
				at = region
				region += int64(len(c.Data))
				payloads = append(payloads, c.Data)
			}
			w.chunkOffs = append(w.chunkOffs, buildChunk(b, c, 0, at))
		}
	}
	chunks := endOffsetVector(b, w.chunkOffs)
	w.itemOffs = w.itemOffs[:0]
	for i := range samples {
		s := &samples[i]
		var traj flatbuffers.UOffsetT
		traj, w.colOffs = buildTrajectory(b, s.Trajectory, w.colOffs)
		b.StartVector(8, len(s.Chunks), 8)
		for j := len(s.Chunks) - 1; j >= 0; j-- {
			b.PrependUint64(s.Chunks[j].Key)
		}
		ck := b.EndVector(len(s.Chunks))
		wire.SampleInfoStart(b)
		wire.SampleInfoAddKey(b, s.Info.Key)
		wire.SampleInfoAddPriority(b, s.Info.Priority)
		wire.SampleInfoAddProbability(b, s.Info.Probability)
		wire.SampleInfoAddTimesSampled(b, s.Info.TimesSampled)
		wire.SampleInfoAddTableSize(b, s.Info.TableSize)
		wire.SampleInfoAddInsertedAtUnixNanos(b, s.Info.InsertedAt.UnixNano())
		wire.SampleInfoAddRateLimited(b, s.Info.RateLimited)
		info := wire.SampleInfoEnd(b)
		wire.SampledItemStart(b)
		wire.SampledItemAddInfo(b, info)
		wire.SampledItemAddTrajectory(b, traj)
		wire.SampledItemAddChunkKeys(b, ck)
		w.itemOffs = append(w.itemOffs, wire.SampledItemEnd(b))
	}
	items := endOffsetVector(b, w.itemOffs)
	wire.SampleResponseStart(b)
	wire.SampleResponseAddSamples(b, items)
	wire.SampleResponseAddChunks(b, chunks)
	if region > 0 {
		wire.SampleResponseAddPayloadSize(b, uint64(region))
	}
	b.Finish(wire.SampleResponseEnd(b))
	return payloads, payload
}

// keySet is a set of chunk keys that is emptied in constant time: an
// open-addressing table whose slots count as empty unless stamped with the
// current generation.
type keySet struct {
	slots []keySlot
	gen   uint32
}

type keySlot struct {
	key uint64
	gen uint32
}

// reset empties the set and makes room for n keys.
func (s *keySet) reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if len(s.slots) < size {
		s.slots = make([]keySlot, size)
		s.gen = 0
	}
	s.gen++
	if s.gen == 0 { // wrapped: stale stamps could match
		clear(s.slots)
		s.gen = 1
	}
}

// add inserts key and reports whether it was absent. The set must have
// room (see reset).
func (s *keySet) add(key uint64) bool {
	mask := uint64(len(s.slots) - 1)
	for i := (key * 0x9E3779B97F4A7C15) >> 32 & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.gen != s.gen {
			sl.key, sl.gen = key, s.gen
			return true
		}
		if sl.key == key {
			return false
		}
	}
}

// --- client: decoding responses -------------------------------------------

// responseDecoder turns SampleResponse messages into Samples. Each chunk of
// a response is decoded once, however many samples use it; chunks stored
// uncompressed are used in place, so the samples share the message buffer
// (gRPC hands every message a fresh one). Not safe for concurrent use.
type responseDecoder struct {
	dec    chunkcodec.Decoder
	chunks []respChunk
	// next is where the chunk the next sample uses first usually is: the
	// server writes chunks in order of first use.
	next int
	// index maps chunk keys to positions in chunks; built only when a
	// lookup misses next (chunks shared between samples).
	index   map[uint64]int
	indexed bool
	last    int // the chunk of the latest lookup
	// arena decodes a sample's trajectory; rewound for every sample.
	arena decodeArena
}

type respChunk struct {
	key     uint64
	data    []byte
	decoded bool
	// dc is reused from response to response: samples keep nothing of it
	// (assembleColumns copies shapes; data is the message's or a fresh
	// buffer).
	dc chunkcodec.Chunk
}

// decode decodes the samples of a response. On error it returns the
// samples before the one that failed.
func (d *responseDecoder) decode(buf []byte) (out []Sample, err error) {
	defer func() { // keep no message alive
		for i := range d.chunks {
			c := &d.chunks[i]
			if c.decoded {
				c.dc = chunkcodec.Chunk{}
			}
			c.data, c.decoded = nil, false
		}
		d.arena.col = wire.TrajectoryColumn{}
	}()
	out, err = d.parse(buf)
	if ae, ok := err.(assembleErr); ok {
		err = ae.err // reported as is, like Next's other sample errors
	} else if err != nil {
		err = fmt.Errorf("replay: sample response: %w", err)
	}
	return out, err
}

// assembleErr marks an error of building a sample's columns, as opposed to
// a malformed response.
type assembleErr struct{ err error }

func (e assembleErr) Error() string { return e.err.Error() }

func (d *responseDecoder) parse(buf []byte) (out []Sample, err error) {
	defer decodeGuard(&err)
	buf, region, err := splitPayloadRegion(buf, func(b []byte) uint64 { return wire.GetRootAsSampleResponse(b, 0).PayloadSize() })
	if err != nil {
		return nil, err
	}
	w := wire.GetRootAsSampleResponse(buf, 0)
	n := w.ChunksLength()
	if err := checkLen(buf, n, 4, "chunks"); err != nil {
		return nil, err
	}
	d.chunks = d.chunks[:0]
	var wc wire.Chunk
	for i := 0; i < n; i++ {
		if !w.Chunks(&wc, i) {
			return nil, fmt.Errorf("%w: chunk %d unreadable", errMalformed, i)
		}
		c, err := readChunk(&wc)
		if err != nil {
			return nil, err
		}
		if err := outOfLinePayload(&c, &wc, region); err != nil {
			return nil, err
		}
		if i < cap(d.chunks) {
			d.chunks = d.chunks[:i+1]
		} else {
			d.chunks = append(d.chunks, respChunk{})
		}
		d.chunks[i].key, d.chunks[i].data = c.Key, c.Data
	}
	d.next, d.last, d.indexed = 0, -1, false

	ns := w.SamplesLength()
	if err := checkLen(buf, ns, 4, "samples"); err != nil {
		return nil, err
	}
	var ws wire.SampledItem
	var wi wire.SampleInfo
	// One block each for all samples' column and name slices.
	ncols := 0
	for i := 0; i < ns; i++ {
		if !w.Samples(&ws, i) {
			return nil, fmt.Errorf("%w: sample %d unreadable", errMalformed, i)
		}
		ncols += ws.TrajectoryLength()
	}
	if err := checkLen(buf, ncols, 4, "trajectory columns"); err != nil {
		return nil, err
	}
	out = make([]Sample, 0, ns)
	tensors := make([]Tensor, ncols)
	names := make([]string, ncols)
	shapes := block[int]{buf: make([]int, 3*ncols)} // [steps, dims...] of rank ≤ 2 fit
	for i := 0; i < ns; i++ {
		w.Samples(&ws, i)
		if ws.Info(&wi) == nil {
			return out, fmt.Errorf("%w: sample %d has no info", errMalformed, i)
		}
		info := SampleInfo{
			Key:          wi.Key(),
			Priority:     wi.Priority(),
			Probability:  wi.Probability(),
			TimesSampled: wi.TimesSampled(),
			TableSize:    wi.TableSize(),
			InsertedAt:   time.Unix(0, wi.InsertedAtUnixNanos()),
			RateLimited:  wi.RateLimited(),
		}
		tn := ws.TrajectoryLength()
		d.arena.columns.rewind()
		d.arena.slices.rewind()
		traj, err := d.arena.trajectory(buf, tn, ws.Trajectory, tn)
		if err != nil {
			return out, err
		}
		cols, nms := tensors[:tn:tn], names[:tn:tn]
		tensors, names = tensors[tn:], names[tn:]
		if err := assembleColumns(traj, cols, nms, &shapes, d); err != nil {
			return out, assembleErr{err}
		}
		out = append(out, Sample{Info: info, Columns: cols, Names: nms})
	}
	return out, nil
}

// chunk returns the decoded chunk key of the response, for assembleColumns.
func (d *responseDecoder) chunk(key uint64) (*chunkcodec.Chunk, bool, error) {
	i := -1
	switch {
	case d.last >= 0 && d.chunks[d.last].key == key:
		i = d.last
	case d.next < len(d.chunks) && d.chunks[d.next].key == key:
		i = d.next
		d.next++
	default:
		if !d.indexed {
			if d.index == nil {
				d.index = make(map[uint64]int, len(d.chunks))
			}
			clear(d.index)
			for j := len(d.chunks) - 1; j >= 0; j-- { // the first of duplicates wins
				d.index[d.chunks[j].key] = j
			}
			d.indexed = true
		}
		j, ok := d.index[key]
		if !ok {
			return nil, false, nil
		}
		i = j
	}
	d.last = i
	c := &d.chunks[i]
	if !c.decoded {
		if err := d.dec.DecodeInto(&c.dc, c.data); err != nil {
			return nil, true, fmt.Errorf("replay: chunk %d: %w", key, err)
		}
		c.decoded = true
	}
	return &c.dc, true, nil
}

// samplePipelineDepth is how many responses a Sample stream splits the
// client's credit window into (see Server.Sample).
const samplePipelineDepth = 4
