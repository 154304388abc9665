package replay

import (
	"errors"
	"fmt"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// This file converts between wire messages and the table package's types.
// Parsing never trusts the message: FlatBuffers accessors index the buffer
// directly and panic on bad offsets, so every parse runs under decodeGuard,
// which turns such a panic into errMalformed, and vector lengths are checked
// against the buffer size before anything is allocated for them.

// errMalformed is returned for a message that cannot be decoded.
var errMalformed = errors.New("malformed message")

// decodeGuard converts a panic raised while reading a FlatBuffers message
// into an error stored in *err. Use as: defer decodeGuard(&err).
func decodeGuard(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", errMalformed, r)
	}
}

// checkLen rejects a vector length that could not fit in buf at elemSize
// bytes per element (a corrupt length would otherwise drive allocation).
func checkLen(buf []byte, n, elemSize int, what string) error {
	if n < 0 || n > len(buf)/elemSize {
		return fmt.Errorf("%w: %s has %d elements in a %d-byte message", errMalformed, what, n, len(buf))
	}
	return nil
}

// rootOK verifies that a received buffer holds a root table offset in range.
func rootOK(buf []byte) error {
	if len(buf) < flatbuffers.SizeUOffsetT+flatbuffers.SizeUOffsetT {
		return fmt.Errorf("%w: %d bytes is too short", errMalformed, len(buf))
	}
	return nil
}

// --- chunks ---------------------------------------------------------------

func buildColumnSpecs(b *flatbuffers.Builder, cols []table.ColumnSpec) flatbuffers.UOffsetT {
	if len(cols) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(cols))
	for i, c := range cols {
		var name flatbuffers.UOffsetT
		if c.Name != "" {
			name = b.CreateString(c.Name)
		}
		wire.ColumnSpecStartShapeVector(b, len(c.Shape))
		for j := len(c.Shape) - 1; j >= 0; j-- {
			b.PrependInt32(int32(c.Shape[j]))
		}
		shape := b.EndVector(len(c.Shape))
		wire.ColumnSpecStart(b)
		if name != 0 {
			wire.ColumnSpecAddName(b, name)
		}
		wire.ColumnSpecAddDtype(b, wire.DType(c.DType))
		wire.ColumnSpecAddShape(b, shape)
		offs[i] = wire.ColumnSpecEnd(b)
	}
	return endOffsetVector(b, offs)
}

func endOffsetVector(b *flatbuffers.Builder, offs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	b.StartVector(flatbuffers.SizeUOffsetT, len(offs), flatbuffers.SizeUOffsetT)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

func buildUint64s(b *flatbuffers.Builder, vs []uint64) flatbuffers.UOffsetT {
	b.StartVector(8, len(vs), 8)
	for i := len(vs) - 1; i >= 0; i-- {
		b.PrependUint64(vs[i])
	}
	return b.EndVector(len(vs))
}

// buildChunk writes c into b with the column spec list cols (0: none;
// sample responses leave the specs out, since the chunk data describes its
// own columns). Its payload is copied in, or, if payloadOffset >= 0, named
// as lying at that offset of the request's payload region.
func buildChunk(b *flatbuffers.Builder, c *table.Chunk, cols flatbuffers.UOffsetT, payloadOffset int64) flatbuffers.UOffsetT {
	var data flatbuffers.UOffsetT
	if payloadOffset < 0 {
		data = b.CreateByteVector(c.Data)
	}
	wire.ChunkStart(b)
	wire.ChunkAddKey(b, c.Key)
	wire.ChunkAddEpisodeId(b, c.EpisodeID)
	wire.ChunkAddStart(b, c.Start)
	wire.ChunkAddLength(b, c.Length)
	if cols != 0 {
		wire.ChunkAddColumns(b, cols)
	}
	if payloadOffset < 0 {
		wire.ChunkAddData(b, data)
	} else if len(c.Data) > 0 {
		wire.ChunkAddPayloadOffset(b, uint64(payloadOffset))
		wire.ChunkAddPayloadLength(b, uint64(len(c.Data)))
	}
	return wire.ChunkEnd(b)
}

func parseColumnSpecs(buf []byte, n int, get func(*wire.ColumnSpec, int) bool) ([]table.ColumnSpec, error) {
	if n == 0 {
		return nil, nil
	}
	if err := checkLen(buf, n, 4, "column list"); err != nil {
		return nil, err
	}
	out := make([]table.ColumnSpec, n)
	var w wire.ColumnSpec
	for i := range out {
		if !get(&w, i) {
			return nil, fmt.Errorf("%w: column %d unreadable", errMalformed, i)
		}
		dt := tensor.DType(w.Dtype())
		if !dt.Valid() {
			return nil, fmt.Errorf("%w: column %d has unknown dtype %d", errMalformed, i, w.Dtype())
		}
		sn := w.ShapeLength()
		if err := checkLen(buf, sn, 4, "shape"); err != nil {
			return nil, err
		}
		shape := make([]int, sn)
		for j := range shape {
			shape[j] = int(w.Shape(j))
		}
		out[i] = table.ColumnSpec{Name: string(w.Name()), DType: dt, Shape: shape}
	}
	return out, nil
}

// --- trajectories -----------------------------------------------------------

// buildTrajectory writes traj into b. offs is scratch space for the
// columns' offsets; it is returned, grown as needed, for the next call.
func buildTrajectory(b *flatbuffers.Builder, traj []table.TrajectoryColumn, offs []flatbuffers.UOffsetT) (flatbuffers.UOffsetT, []flatbuffers.UOffsetT) {
	offs = offs[:0]
	for _, col := range traj {
		wire.TrajectoryColumnStartSlicesVector(b, len(col.Slices))
		for j := len(col.Slices) - 1; j >= 0; j-- {
			s := col.Slices[j]
			wire.CreateChunkSlice(b, s.ChunkKey, s.Offset, s.Length, s.Index)
		}
		slices := b.EndVector(len(col.Slices))
		wire.TrajectoryColumnStart(b)
		wire.TrajectoryColumnAddSlices(b, slices)
		if col.Squeeze {
			wire.TrajectoryColumnAddSqueeze(b, true)
		}
		offs = append(offs, wire.TrajectoryColumnEnd(b))
	}
	return endOffsetVector(b, offs), offs
}

// --- insert -----------------------------------------------------------------

// insertItem is an item parsed from an InsertRequest, before its chunk keys
// are resolved to references.
type insertItem struct {
	table      string
	key        uint64
	priority   float64
	trajectory []table.TrajectoryColumn
}

// insertRequest is a parsed InsertRequest.
type insertRequest struct {
	chunks  []*table.Chunk
	items   []insertItem
	release []uint64
}

func parseInsertRequest(buf []byte) (req insertRequest, err error) {
	defer decodeGuard(&err)
	buf, region, err := splitPayloadRegion(buf, func(b []byte) uint64 { return wire.GetRootAsInsertRequest(b, 0).PayloadSize() })
	if err != nil {
		return req, err
	}
	w := wire.GetRootAsInsertRequest(buf, 0)
	n := w.ChunksLength()
	if err := checkLen(buf, n, 4, "chunks"); err != nil {
		return req, err
	}
	var a decodeArena
	req.chunks = make([]*table.Chunk, n)
	var wc wire.Chunk
	for i := range req.chunks {
		if !w.Chunks(&wc, i) {
			return req, fmt.Errorf("%w: chunk %d unreadable", errMalformed, i)
		}
		c, err := a.chunk(buf, &wc, n-i)
		if err != nil {
			return req, err
		}
		if err := outOfLinePayload(c, &wc, region); err != nil {
			return req, err
		}
		req.chunks[i] = c
	}
	n = w.ItemsLength()
	if err := checkLen(buf, n, 4, "items"); err != nil {
		return req, err
	}
	req.items = make([]insertItem, n)
	var wi wire.Item
	for i := range req.items {
		if !w.Items(&wi, i) {
			return req, fmt.Errorf("%w: item %d unreadable", errMalformed, i)
		}
		traj, err := a.trajectory(buf, wi.TrajectoryLength(), wi.Trajectory, n-i)
		if err != nil {
			return req, fmt.Errorf("item %d: %w", wi.Key(), err)
		}
		req.items[i] = insertItem{table: a.name(wi.TableName()), key: wi.Key(), priority: wi.Priority(), trajectory: traj}
	}
	n = w.ReleaseChunkKeysLength()
	if err := checkLen(buf, n, 8, "release_chunk_keys"); err != nil {
		return req, err
	}
	req.release = make([]uint64, n)
	for i := range req.release {
		req.release[i] = w.ReleaseChunkKeys(i)
	}
	return req, nil
}

// splitPayloadRegion splits a message into its FlatBuffer and the payload
// region that follows it, whose size the message's root names (read with
// sizeOf once the root is known to be readable). The FlatBuffer's offsets
// are then checked against the FlatBuffer alone.
func splitPayloadRegion(buf []byte, sizeOf func([]byte) uint64) (fb, region []byte, err error) {
	if err := rootOK(buf); err != nil {
		return nil, nil, err
	}
	size := sizeOf(buf)
	if size > uint64(len(buf)) {
		return nil, nil, fmt.Errorf("%w: payload region of %d bytes in a message of %d", errMalformed, size, len(buf))
	}
	fb, region = buf[:uint64(len(buf))-size], buf[uint64(len(buf))-size:]
	if err := rootOK(fb); err != nil {
		return nil, nil, err
	}
	return fb, region, nil
}

// outOfLinePayload points c.Data at its bytes in the payload region if the
// chunk has them there.
func outOfLinePayload(c *table.Chunk, w *wire.Chunk, region []byte) error {
	off, n := w.PayloadOffset(), w.PayloadLength()
	if n == 0 {
		if off != 0 {
			return fmt.Errorf("%w: chunk %d has a payload offset but no payload length", errMalformed, c.Key)
		}
		return nil
	}
	if len(c.Data) > 0 {
		return fmt.Errorf("%w: chunk %d has both inline data and an out-of-line payload", errMalformed, c.Key)
	}
	if off > uint64(len(region)) || n > uint64(len(region))-off {
		return fmt.Errorf("%w: chunk %d payload [%d, +%d) lies outside the payload region of %d bytes", errMalformed, c.Key, off, n, len(region))
	}
	c.Data = region[off : off+n : off+n]
	return nil
}

func buildInsertResponse(keys []uint64) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(16 + 8*len(keys))
	v := buildUint64s(b, keys)
	wire.InsertResponseStart(b)
	wire.InsertResponseAddKeys(b, v)
	b.Finish(wire.InsertResponseEnd(b))
	return b
}

func parseInsertResponse(buf []byte) (keys []uint64, err error) {
	defer decodeGuard(&err)
	if err := rootOK(buf); err != nil {
		return nil, err
	}
	w := wire.GetRootAsInsertResponse(buf, 0)
	n := w.KeysLength()
	if err := checkLen(buf, n, 8, "keys"); err != nil {
		return nil, err
	}
	keys = make([]uint64, n)
	for i := range keys {
		keys[i] = w.Keys(i)
	}
	return keys, nil
}

// --- sample -----------------------------------------------------------------

type sampleRequest struct {
	table      string
	credit     int32
	timeout    time.Duration // 0: wait forever
	maxSamples int64
}

func parseSampleRequest(buf []byte) (req sampleRequest, err error) {
	defer decodeGuard(&err)
	if err := rootOK(buf); err != nil {
		return req, err
	}
	w := wire.GetRootAsSampleRequest(buf, 0)
	req.table = string(w.TableName())
	req.credit = w.Credit()
	if ms := w.RateLimiterTimeoutMs(); ms > 0 {
		req.timeout = time.Duration(ms) * time.Millisecond
	}
	req.maxSamples = w.MaxSamples()
	if req.credit < 0 {
		return req, fmt.Errorf("%w: negative credit %d", errMalformed, req.credit)
	}
	return req, nil
}

func buildSampleRequest(tableName string, credit int32, timeout time.Duration, maxSamples int64) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(64)
	var name flatbuffers.UOffsetT
	if tableName != "" {
		name = b.CreateString(tableName)
	}
	wire.SampleRequestStart(b)
	if name != 0 {
		wire.SampleRequestAddTableName(b, name)
	}
	wire.SampleRequestAddCredit(b, credit)
	if timeout > 0 {
		ms := timeout.Milliseconds()
		if ms == 0 {
			ms = 1
		}
		wire.SampleRequestAddRateLimiterTimeoutMs(b, ms)
	}
	if maxSamples > 0 {
		wire.SampleRequestAddMaxSamples(b, maxSamples)
	}
	b.Finish(wire.SampleRequestEnd(b))
	return b
}

// --- mutate, reset ----------------------------------------------------------

type mutateRequest struct {
	table   string
	updates map[uint64]float64
	deletes []uint64
}

func buildMutateRequest(tableName string, updates map[uint64]float64, deletes []uint64) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(64 + 16*len(updates) + 8*len(deletes))
	name := b.CreateString(tableName)
	offs := make([]flatbuffers.UOffsetT, 0, len(updates))
	for k, p := range updates {
		wire.PriorityUpdateStart(b)
		wire.PriorityUpdateAddKey(b, k)
		wire.PriorityUpdateAddPriority(b, p)
		offs = append(offs, wire.PriorityUpdateEnd(b))
	}
	ups := endOffsetVector(b, offs)
	dels := buildUint64s(b, deletes)
	wire.MutatePrioritiesRequestStart(b)
	wire.MutatePrioritiesRequestAddTableName(b, name)
	wire.MutatePrioritiesRequestAddUpdates(b, ups)
	wire.MutatePrioritiesRequestAddDeleteKeys(b, dels)
	b.Finish(wire.MutatePrioritiesRequestEnd(b))
	return b
}

func parseMutateRequest(buf []byte) (req mutateRequest, err error) {
	defer decodeGuard(&err)
	if err := rootOK(buf); err != nil {
		return req, err
	}
	w := wire.GetRootAsMutatePrioritiesRequest(buf, 0)
	req.table = string(w.TableName())
	n := w.UpdatesLength()
	if err := checkLen(buf, n, 4, "updates"); err != nil {
		return req, err
	}
	req.updates = make(map[uint64]float64, n)
	var u wire.PriorityUpdate
	for i := 0; i < n; i++ {
		if !w.Updates(&u, i) {
			return req, fmt.Errorf("%w: update %d unreadable", errMalformed, i)
		}
		req.updates[u.Key()] = u.Priority()
	}
	n = w.DeleteKeysLength()
	if err := checkLen(buf, n, 8, "delete_keys"); err != nil {
		return req, err
	}
	req.deletes = make([]uint64, n)
	for i := range req.deletes {
		req.deletes[i] = w.DeleteKeys(i)
	}
	return req, nil
}

func buildResetRequest(tableName string) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(64)
	name := b.CreateString(tableName)
	wire.ResetRequestStart(b)
	wire.ResetRequestAddTableName(b, name)
	b.Finish(wire.ResetRequestEnd(b))
	return b
}

func parseResetRequest(buf []byte) (name string, err error) {
	defer decodeGuard(&err)
	if err := rootOK(buf); err != nil {
		return "", err
	}
	return string(wire.GetRootAsResetRequest(buf, 0).TableName()), nil
}

// emptyMessage builds a message of a table type with no fields.
func emptyMessage(start func(*flatbuffers.Builder), end func(*flatbuffers.Builder) flatbuffers.UOffsetT) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(16)
	start(b)
	b.Finish(end(b))
	return b
}

// --- server info ------------------------------------------------------------

// TableInfo is the state of one table as reported by ServerInfo.
type TableInfo = table.Info

// ServerInfo describes a server's tables.
type ServerInfo struct {
	// TablesStateID changes whenever the server's tables are recreated
	// (for example on restart); clients use it to notice.
	TablesStateID string      `json:"tables_state_id"`
	Tables        []TableInfo `json:"tables"`
	NumChunks     int64       `json:"num_chunks"`
	ChunkBytes    int64       `json:"chunk_bytes"`
	Version       string      `json:"version"`
}

func buildSelector(b *flatbuffers.Builder, s sampler.Spec) flatbuffers.UOffsetT {
	wire.SelectorSpecStart(b)
	wire.SelectorSpecAddKind(b, wire.SelectorKind(s.Kind))
	wire.SelectorSpecAddPriorityExponent(b, s.PriorityExponent)
	return wire.SelectorSpecEnd(b)
}

func buildServerInfo(si ServerInfo) *flatbuffers.Builder {
	b := flatbuffers.NewBuilder(1024)
	offs := make([]flatbuffers.UOffsetT, len(si.Tables))
	for i, t := range si.Tables {
		name := b.CreateString(t.Name)
		smp := buildSelector(b, t.Sampler)
		rem := buildSelector(b, t.Remover)
		sbr := b.CreateString(t.SampleBlockedReason)
		ibr := b.CreateString(t.InsertBlockedReason)
		desc := b.CreateString(t.RateLimiter.String())
		wire.RateLimiterInfoStart(b)
		wire.RateLimiterInfoAddSamplesPerInsert(b, t.RateLimiter.SamplesPerInsert)
		wire.RateLimiterInfoAddMinSizeToSample(b, t.RateLimiter.MinSizeToSample)
		wire.RateLimiterInfoAddMinDiff(b, t.RateLimiter.MinDiff)
		wire.RateLimiterInfoAddMaxDiff(b, t.RateLimiter.MaxDiff)
		wire.RateLimiterInfoAddInserts(b, t.Limiter.Inserts)
		wire.RateLimiterInfoAddSamples(b, t.Limiter.Samples)
		wire.RateLimiterInfoAddDeletes(b, t.Limiter.Deletes)
		wire.RateLimiterInfoAddInsertWaits(b, t.InsertWaits)
		wire.RateLimiterInfoAddSampleWaits(b, t.SampleWaits)
		wire.RateLimiterInfoAddInsertsWaiting(b, int32(t.InsertsWaiting))
		wire.RateLimiterInfoAddSamplesWaiting(b, int32(t.SamplesWaiting))
		wire.RateLimiterInfoAddSampleBlockedReason(b, sbr)
		wire.RateLimiterInfoAddInsertBlockedReason(b, ibr)
		wire.RateLimiterInfoAddDescription(b, desc)
		rl := wire.RateLimiterInfoEnd(b)
		var sig flatbuffers.UOffsetT
		if t.Signature != nil {
			sig = buildColumnSpecs(b, t.Signature.Columns)
		}
		wire.TableInfoStart(b)
		wire.TableInfoAddName(b, name)
		wire.TableInfoAddSampler(b, smp)
		wire.TableInfoAddRemover(b, rem)
		wire.TableInfoAddMaxSize(b, t.MaxSize)
		wire.TableInfoAddMaxTimesSampled(b, t.MaxTimesSampled)
		wire.TableInfoAddRateLimiter(b, rl)
		if sig != 0 {
			wire.TableInfoAddSignature(b, sig)
		}
		wire.TableInfoAddSize(b, t.Size)
		wire.TableInfoAddNumEpisodes(b, t.NumEpisodes)
		wire.TableInfoAddNumDeletedEpisodes(b, t.NumDeletedEpisodes)
		wire.TableInfoAddNumUniqueSamples(b, t.NumUniqueSamples)
		offs[i] = wire.TableInfoEnd(b)
	}
	tables := endOffsetVector(b, offs)
	id := b.CreateString(si.TablesStateID)
	ver := b.CreateString(si.Version)
	wire.ServerInfoResponseStart(b)
	wire.ServerInfoResponseAddTablesStateId(b, id)
	wire.ServerInfoResponseAddTables(b, tables)
	wire.ServerInfoResponseAddNumChunks(b, si.NumChunks)
	wire.ServerInfoResponseAddChunkBytes(b, si.ChunkBytes)
	wire.ServerInfoResponseAddVersion(b, ver)
	b.Finish(wire.ServerInfoResponseEnd(b))
	return b
}

func parseSelector(w *wire.SelectorSpec) sampler.Spec {
	if w == nil {
		return sampler.Spec{}
	}
	return sampler.Spec{Kind: sampler.Kind(w.Kind()), PriorityExponent: w.PriorityExponent()}
}

func parseServerInfo(buf []byte) (si ServerInfo, err error) {
	defer decodeGuard(&err)
	if err := rootOK(buf); err != nil {
		return si, err
	}
	w := wire.GetRootAsServerInfoResponse(buf, 0)
	si.TablesStateID = string(w.TablesStateId())
	si.NumChunks = w.NumChunks()
	si.ChunkBytes = w.ChunkBytes()
	si.Version = string(w.Version())
	n := w.TablesLength()
	if err := checkLen(buf, n, 4, "tables"); err != nil {
		return si, err
	}
	si.Tables = make([]TableInfo, n)
	var wt wire.TableInfo
	var rl wire.RateLimiterInfo
	for i := range si.Tables {
		if !w.Tables(&wt, i) {
			return si, fmt.Errorf("%w: table %d unreadable", errMalformed, i)
		}
		t := TableInfo{
			Name:               string(wt.Name()),
			Sampler:            parseSelector(wt.Sampler(nil)),
			Remover:            parseSelector(wt.Remover(nil)),
			MaxSize:            wt.MaxSize(),
			MaxTimesSampled:    wt.MaxTimesSampled(),
			Size:               wt.Size(),
			NumEpisodes:        wt.NumEpisodes(),
			NumDeletedEpisodes: wt.NumDeletedEpisodes(),
			NumUniqueSamples:   wt.NumUniqueSamples(),
		}
		if wt.RateLimiter(&rl) != nil {
			t.RateLimiter = ratelimit.Config{
				SamplesPerInsert: rl.SamplesPerInsert(),
				MinSizeToSample:  rl.MinSizeToSample(),
				MinDiff:          rl.MinDiff(),
				MaxDiff:          rl.MaxDiff(),
			}
			t.Limiter = ratelimit.State{Inserts: rl.Inserts(), Samples: rl.Samples(), Deletes: rl.Deletes()}
			t.InsertWaits, t.SampleWaits = rl.InsertWaits(), rl.SampleWaits()
			t.InsertsWaiting, t.SamplesWaiting = int(rl.InsertsWaiting()), int(rl.SamplesWaiting())
			t.SampleBlockedReason = string(rl.SampleBlockedReason())
			t.InsertBlockedReason = string(rl.InsertBlockedReason())
		}
		if sn := wt.SignatureLength(); sn > 0 {
			cols, err := parseColumnSpecs(buf, sn, wt.Signature)
			if err != nil {
				return si, err
			}
			t.Signature = &table.Signature{Columns: cols}
		}
		si.Tables[i] = t
	}
	return si, nil
}

// buildInsertMessage writes an insert request (chunks, items, the chunk
// keys the stream should release after it) with the chunk payloads of at
// least minOut bytes out of line: the FlatBuffer, built in a pooled
// builder, names where each of them lies in the payload region, and they
// are sent after it as they are, without being copied into the message.
// Smaller payloads (the writer passes minOutOfLine) are copied in, which
// costs less than one more buffer for gRPC to write.
//
// bufs, if not nil, has an entry per chunk: the recycled buffer holding its
// payload, or nil, each with a hold for the message. The message keeps the
// holds of the payloads it sends out of line, released as gRPC frees them
// after writing; it releases the others at once.
func buildInsertMessage(chunks []*table.Chunk, bufs []*chunkBuf, items []insertItem, release []uint64, minOut int) *outOfLineMessage {
	m := &outOfLineMessage{fb: getBuilder()}
	out := func(c *table.Chunk) bool { return len(c.Data) >= minOut }
	buildInsert(m.fb.b, chunks, items, release, out)
	for i, c := range chunks {
		var buf *chunkBuf
		if bufs != nil {
			buf = bufs[i]
		}
		switch {
		case out(c):
			m.payloads = append(m.payloads, c.Data)
			m.bufs = append(m.bufs, buf)
		case buf != nil:
			buf.release() // copied into the message
		}
	}
	return m
}

// buildInsert writes an insert request. The chunks outOfLine reports (nil:
// none) have their payloads in the payload region, in chunk order, instead
// of in the chunk.
func buildInsert(b *flatbuffers.Builder, chunks []*table.Chunk, items []insertItem, release []uint64, outOfLine func(*table.Chunk) bool) {
	chunkOffs := make([]flatbuffers.UOffsetT, len(chunks))
	var specs specCache
	var payloadSize int64
	for i, c := range chunks {
		at := int64(-1)
		if outOfLine != nil && outOfLine(c) {
			at = payloadSize
			payloadSize += int64(len(c.Data))
		}
		chunkOffs[i] = buildChunk(b, c, specs.build(b, c.Columns), at)
	}
	cv := endOffsetVector(b, chunkOffs)
	itemOffs := make([]flatbuffers.UOffsetT, len(items))
	var scratch [16]flatbuffers.UOffsetT
	colOffs := scratch[:0]
	for i, it := range items {
		name := b.CreateSharedString(it.table) // one copy per distinct name
		var traj flatbuffers.UOffsetT
		traj, colOffs = buildTrajectory(b, it.trajectory, colOffs)
		wire.ItemStart(b)
		wire.ItemAddKey(b, it.key)
		wire.ItemAddTableName(b, name)
		wire.ItemAddPriority(b, it.priority)
		wire.ItemAddTrajectory(b, traj)
		itemOffs[i] = wire.ItemEnd(b)
	}
	iv := endOffsetVector(b, itemOffs)
	rv := buildUint64s(b, release)
	wire.InsertRequestStart(b)
	wire.InsertRequestAddChunks(b, cv)
	wire.InsertRequestAddItems(b, iv)
	wire.InsertRequestAddReleaseChunkKeys(b, rv)
	if payloadSize > 0 {
		wire.InsertRequestAddPayloadSize(b, uint64(payloadSize))
	}
	b.Finish(wire.InsertRequestEnd(b))
}

// specCache writes each distinct column spec list of a message once: the
// chunks of one column share their spec list (the same slice), and a
// FlatBuffer may point several chunks at one vector.
type specCache struct {
	n       int
	entries [8]struct {
		specs *table.ColumnSpec
		len   int
		off   flatbuffers.UOffsetT
	}
}

func (sc *specCache) build(b *flatbuffers.Builder, cols []table.ColumnSpec) flatbuffers.UOffsetT {
	if len(cols) == 0 {
		return 0
	}
	for i := range sc.n {
		if e := &sc.entries[i]; e.specs == &cols[0] && e.len == len(cols) {
			return e.off
		}
	}
	off := buildColumnSpecs(b, cols)
	if sc.n < len(sc.entries) {
		sc.entries[sc.n].specs, sc.entries[sc.n].len, sc.entries[sc.n].off = &cols[0], len(cols), off
		sc.n++
	}
	return off
}
