package replay

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// This file defines the records that checkpoints and the durable store keep
// in Pebble. Both use the same key space (docs/checkpoints.md describes it
// byte by byte):
//
//	"A"                      as-of time of a durable store: int64 unix nanos, big endian
//	"C" be64(chunk key)      a chunk, stored once however many items use it
//	"I" be32(table id) be64(item key)   an item's immutable part: insertion sequence, insertion time, trajectory
//	"M"                      meta record (JSON): format version, kind, creation time
//	"P" be32(table id) be64(item key)   an item's mutable part: priority and times sampled
//	"S" be32(table id)       a table's counters: limiter inserts/samples/deletes, episode and sample counters, next sequence
//	"T" table name           a table's definition (JSON): id and options
//	"V" be64(chunk key)      durable stores only, instead of "C": where the chunk is in the chunk log
//	                         (uvarint segment, uvarint offset, uvarint length, u32 CRC-32C)
//
// Item records are keyed by item key so that the durable store can update
// and delete them; the insertion order is the sequence number inside. Binary
// values use unsigned and zig-zag varints (encoding/binary) except where a
// fixed width is noted. Every decoder checks bounds and never trusts a
// count, so a corrupt value is an error, never a panic or a huge allocation.

// checkpointFormat is the version of the record layout above. A reader
// refuses a store with a newer version.
const checkpointFormat = 1

// Record key prefixes.
const (
	prefixAsOf     = 'A'
	prefixChunk    = 'C'
	prefixItem     = 'I'
	prefixMeta     = 'M'
	prefixPriority = 'P'
	prefixState    = 'S'
	prefixTable    = 'T'
	prefixPointer  = 'V' // durable stores: where a chunk is in the chunk log
)

// Kinds of store recorded in the meta record.
const (
	storeKindCheckpoint = "checkpoint"
	storeKindDurable    = "durable"
)

// ErrCorruptCheckpoint is returned (wrapped, with the reason) for a
// checkpoint or durable store that fails its checksums, lacks files or
// records, or holds records that cannot be decoded.
var ErrCorruptCheckpoint = errors.New("replay: corrupt checkpoint")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptCheckpoint}, args...)...)
}

var (
	metaKey = []byte{prefixMeta}
	asOfKey = []byte{prefixAsOf}
)

// itemRecordKey returns the key of an item's "I" or "P" record.
func itemRecordKey(prefix byte, tableID uint32, key uint64) []byte {
	k := make([]byte, 13)
	k[0] = prefix
	binary.BigEndian.PutUint32(k[1:], tableID)
	binary.BigEndian.PutUint64(k[5:], key)
	return k
}

// tablePrefix returns the bounds of a table's "I" or "P" records.
func tablePrefix(prefix byte, tableID uint32) (lo, hi []byte) {
	lo = make([]byte, 5)
	lo[0] = prefix
	binary.BigEndian.PutUint32(lo[1:], tableID)
	hi = make([]byte, 5)
	hi[0] = prefix
	binary.BigEndian.PutUint32(hi[1:], tableID+1)
	if tableID == math.MaxUint32 {
		hi = []byte{prefix + 1}
	}
	return lo, hi
}

func stateRecordKey(tableID uint32) []byte {
	k := make([]byte, 5)
	k[0] = prefixState
	binary.BigEndian.PutUint32(k[1:], tableID)
	return k
}

func tableRecordKey(name string) []byte { return append([]byte{prefixTable}, name...) }

// metaRecord is the "M" record.
type metaRecord struct {
	Format int    `json:"format"`
	Kind   string `json:"kind"`
	// Created is, for a checkpoint, the instant its tables were captured;
	// for a durable store, when it was created.
	Created       time.Time `json:"created"`
	ServerVersion string    `json:"server_version"`
}

// tableRecord is the "T" record: a table's definition.
type tableRecord struct {
	ID      uint32        `json:"id"`
	Options optionsRecord `json:"options"`
}

// optionsRecord is table.Options as stored: every option that defines a
// table's behaviour (the chunk store and clock are the server's).
type optionsRecord struct {
	Name            string           `json:"name"`
	Sampler         selectorRecord   `json:"sampler"`
	Remover         selectorRecord   `json:"remover"`
	MaxSize         int64            `json:"max_size"`
	MaxTimesSampled int32            `json:"max_times_sampled"`
	RateLimiter     ratelimit.Config `json:"rate_limiter"`
	Signature       []columnRecord   `json:"signature,omitempty"`
	Seed            uint64           `json:"seed"`
}

type selectorRecord struct {
	Kind             string  `json:"kind"`
	PriorityExponent float64 `json:"priority_exponent,omitempty"`
}

type columnRecord struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

func toOptionsRecord(o table.Options) optionsRecord {
	r := optionsRecord{
		Name:            o.Name,
		Sampler:         selectorRecord{Kind: o.Sampler.Kind.String(), PriorityExponent: o.Sampler.PriorityExponent},
		Remover:         selectorRecord{Kind: o.Remover.Kind.String(), PriorityExponent: o.Remover.PriorityExponent},
		MaxSize:         o.MaxSize,
		MaxTimesSampled: o.MaxTimesSampled,
		RateLimiter:     o.RateLimiter,
		Seed:            o.Seed,
	}
	if o.Signature != nil {
		r.Signature = make([]columnRecord, len(o.Signature.Columns))
		for i, c := range o.Signature.Columns {
			shape := c.Shape
			if shape == nil {
				shape = []int{}
			}
			r.Signature[i] = columnRecord{Name: c.Name, DType: c.DType.String(), Shape: shape}
		}
	}
	return r
}

func (r optionsRecord) options() (table.Options, error) {
	o := table.Options{
		Name:            r.Name,
		MaxSize:         r.MaxSize,
		MaxTimesSampled: r.MaxTimesSampled,
		RateLimiter:     r.RateLimiter,
		Seed:            r.Seed,
	}
	var err error
	if o.Sampler, err = r.Sampler.spec(); err != nil {
		return o, fmt.Errorf("sampler: %w", err)
	}
	if o.Remover, err = r.Remover.spec(); err != nil {
		return o, fmt.Errorf("remover: %w", err)
	}
	if r.Signature != nil {
		o.Signature = &table.Signature{Columns: make([]table.ColumnSpec, len(r.Signature))}
		for i, c := range r.Signature {
			dt, err := tensor.ParseDType(c.DType)
			if err != nil {
				return o, fmt.Errorf("signature column %q: %w", c.Name, err)
			}
			o.Signature.Columns[i] = table.ColumnSpec{Name: c.Name, DType: dt, Shape: c.Shape}
		}
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

func (s selectorRecord) spec() (sampler.Spec, error) {
	k, err := sampler.ParseKind(s.Kind)
	if err != nil {
		return sampler.Spec{}, err
	}
	return sampler.Spec{Kind: k, PriorityExponent: s.PriorityExponent}, nil
}

func marshalJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("replay: checkpoint record: %v", err)) // only plain structs of finite numbers
	}
	return b
}

// tableState is the "S" record: a table's counters.
type tableState struct {
	Limiter            ratelimit.State
	NumDeletedEpisodes int64
	NumUniqueSamples   int64
	// NextSeq is the sequence number the next item gets.
	NextSeq uint64
}

func (s *tableState) encode() []byte {
	b := make([]byte, 0, 6*binary.MaxVarintLen64)
	b = binary.AppendVarint(b, s.Limiter.Inserts)
	b = binary.AppendVarint(b, s.Limiter.Samples)
	b = binary.AppendVarint(b, s.Limiter.Deletes)
	b = binary.AppendVarint(b, s.NumDeletedEpisodes)
	b = binary.AppendVarint(b, s.NumUniqueSamples)
	return binary.AppendUvarint(b, s.NextSeq)
}

func decodeTableState(b []byte) (tableState, error) {
	d := decoder{b: b}
	s := tableState{
		Limiter: ratelimit.State{Inserts: d.varint(), Samples: d.varint(), Deletes: d.varint()},
	}
	s.NumDeletedEpisodes = d.varint()
	s.NumUniqueSamples = d.varint()
	s.NextSeq = d.uvarint()
	return s, d.finish("table state")
}

// appendChunkHeader appends the part of a chunk record before its data:
// episode id, start, length, columns, data length. The data follows.
func appendChunkHeader(b []byte, c *table.Chunk) []byte {
	b = binary.AppendUvarint(b, c.EpisodeID)
	b = binary.AppendVarint(b, c.Start)
	b = binary.AppendVarint(b, int64(c.Length))
	b = binary.AppendUvarint(b, uint64(len(c.Columns)))
	for _, col := range c.Columns {
		b = binary.AppendUvarint(b, uint64(len(col.Name)))
		b = append(b, col.Name...)
		b = append(b, byte(col.DType))
		b = binary.AppendUvarint(b, uint64(len(col.Shape)))
		for _, d := range col.Shape {
			b = binary.AppendVarint(b, int64(d))
		}
	}
	return binary.AppendUvarint(b, uint64(len(c.Data)))
}

// decodeChunk decodes a chunk record and returns it with its data size.
// With keepData the data is copied out of b; otherwise it is left out.
func decodeChunk(key uint64, b []byte, keepData bool) (*table.Chunk, int, error) {
	d := decoder{b: b}
	c := &table.Chunk{Key: key, EpisodeID: d.uvarint(), Start: d.varint()}
	c.Length = int32(d.varint32())
	ncols := d.count(3)
	if ncols > 0 {
		c.Columns = make([]table.ColumnSpec, ncols)
		for i := range c.Columns {
			name := d.bytes(d.count(1))
			dt := tensor.DType(d.byte())
			shape := make([]int, d.count(1))
			for j := range shape {
				shape[j] = int(d.varint32())
			}
			c.Columns[i] = table.ColumnSpec{Name: string(name), DType: dt, Shape: shape}
		}
	}
	n := d.count(1)
	data := d.bytes(n)
	if err := d.finish("chunk"); err != nil {
		return nil, 0, err
	}
	if c.Length <= 0 || n == 0 {
		return nil, 0, corruptf("chunk %d has %d steps and %d bytes", key, c.Length, n)
	}
	if keepData {
		c.Data = append([]byte(nil), data...)
	}
	return c, n, nil
}

// trajectoryChunkKeys returns the distinct chunk keys a trajectory uses, in
// order of first use (the order of table.Item.Chunks).
func trajectoryChunkKeys(traj []table.TrajectoryColumn) []uint64 {
	var keys []uint64
	for _, col := range traj {
	next:
		for _, s := range col.Slices {
			for _, k := range keys {
				if k == s.ChunkKey {
					continue next
				}
			}
			keys = append(keys, s.ChunkKey)
		}
	}
	return keys
}

// itemRecord is the immutable part of an item ("I").
type itemRecord struct {
	Seq        uint64
	InsertedAt int64 // unix nanos
	Trajectory []table.TrajectoryColumn
}

func (r *itemRecord) encode() []byte {
	n := 24
	for _, col := range r.Trajectory {
		n += 4 + 20*len(col.Slices)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendVarint(b, r.InsertedAt)
	b = binary.AppendUvarint(b, uint64(len(r.Trajectory)))
	for _, col := range r.Trajectory {
		sq := byte(0)
		if col.Squeeze {
			sq = 1
		}
		b = append(b, sq)
		b = binary.AppendUvarint(b, uint64(len(col.Slices)))
		for _, s := range col.Slices {
			b = binary.LittleEndian.AppendUint64(b, s.ChunkKey)
			b = binary.AppendVarint(b, int64(s.Offset))
			b = binary.AppendVarint(b, int64(s.Length))
			b = binary.AppendVarint(b, int64(s.Index))
		}
	}
	return b
}

func decodeItem(b []byte) (itemRecord, error) {
	d := decoder{b: b}
	r := itemRecord{Seq: d.uvarint(), InsertedAt: d.varint()}
	r.Trajectory = make([]table.TrajectoryColumn, d.count(2))
	for i := range r.Trajectory {
		sq := d.byte()
		if sq > 1 {
			d.fail("squeeze flag %d", sq)
		}
		sl := make([]table.ChunkSlice, d.count(11))
		for j := range sl {
			sl[j] = table.ChunkSlice{ChunkKey: d.uint64(), Offset: d.varint32(), Length: d.varint32(), Index: d.varint32()}
		}
		r.Trajectory[i] = table.TrajectoryColumn{Slices: sl, Squeeze: sq == 1}
	}
	return r, d.finish("item")
}

// priorityRecord is the mutable part of an item ("P").
type priorityRecord struct {
	Priority     float64
	TimesSampled int32
}

func (r priorityRecord) encode() []byte {
	b := make([]byte, 8, 8+binary.MaxVarintLen32)
	binary.LittleEndian.PutUint64(b, math.Float64bits(r.Priority))
	return binary.AppendUvarint(b, uint64(max(r.TimesSampled, 0)))
}

func decodePriority(b []byte) (priorityRecord, error) {
	d := decoder{b: b}
	r := priorityRecord{Priority: math.Float64frombits(d.uint64())}
	ts := d.uvarint()
	if ts > math.MaxInt32 {
		d.fail("times sampled %d", ts)
	}
	r.TimesSampled = int32(ts)
	if err := d.finish("priority"); err != nil {
		return r, err
	}
	if math.IsNaN(r.Priority) || math.IsInf(r.Priority, 0) || r.Priority < 0 {
		return r, corruptf("priority %v", r.Priority)
	}
	return r, nil
}

func encodeAsOf(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

func decodeAsOf(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, corruptf("as-of record of %d bytes", len(b))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))), nil
}

// decoder reads a binary record. The first error sticks; later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return readVarint(d, binary.Varint) }

// readVarint reads a varint with read (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("value %d out of range", v)
		return 0
	}
	return int32(v)
}

// count reads a length that must fit in the rest of the record at minSize
// bytes per element.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/minSize) {
		d.fail("count %d exceeds the %d bytes left", v, len(d.b))
		return 0
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return corruptf("%s record: %v", what, d.err)
	}
	return nil
}
