package chunkcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/recall-rl/recall/internal/tensor"
)

// ColumnInfo describes one column of an encoded chunk.
type ColumnInfo struct {
	Name  string
	DType tensor.DType
	// Shape is the shape of one step. It is shared with the chunk and must
	// not be modified.
	Shape []int
	// Delta reports whether the column was delta encoded.
	Delta bool
}

// Header is what a chunk says about itself, read without decompressing it.
type Header struct {
	NumSteps   int
	Compressed bool // the payload is zstd-compressed
	RawSize    int  // size of the uncompressed payload in bytes
	Columns    []ColumnInfo
}

// Chunk is a decoded chunk. Its tensors share one buffer owned by the chunk;
// they must not be modified. A Chunk is safe for concurrent reads.
type Chunk struct {
	hdr  Header
	cols []decodedColumn
	// Inline storage for the column tables of small chunks, so that
	// decoding a chunk of one column of rank ≤ 3 allocates the Chunk and
	// (when copying) its data buffer, nothing else.
	small struct {
		info [1]ColumnInfo
		col  [1]decodedColumn
		dims [4]int
	}
}

type decodedColumn struct {
	batched   tensor.Tensor // [NumSteps, step shape...]
	stepBytes int
}

// Header returns the chunk's header. Its Columns slice is shared with the
// chunk and must not be modified.
func (c *Chunk) Header() Header { return c.hdr }

// NumSteps returns the number of steps in the chunk.
func (c *Chunk) NumSteps() int { return c.hdr.NumSteps }

// NumColumns returns the number of columns in the chunk.
func (c *Chunk) NumColumns() int { return len(c.cols) }

// Info describes column col. It panics if col is out of range.
func (c *Chunk) Info(col int) ColumnInfo { return c.hdr.Columns[col] }

// Index returns the index of the column called name, or -1 if there is none.
func (c *Chunk) Index(name string) int {
	for i := range c.hdr.Columns {
		if c.hdr.Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// Batched returns all steps of column col as one [NumSteps, step shape...]
// tensor. It shares memory with the chunk. It panics if col is out of range.
func (c *Chunk) Batched(col int) tensor.Tensor { return c.cols[col].batched }

// Step returns step i of column col, a view into the chunk's buffer (no
// copy). It panics if col or i is out of range.
func (c *Chunk) Step(col, i int) tensor.Tensor {
	dc := &c.cols[col]
	if uint(i) >= uint(c.hdr.NumSteps) {
		panic(fmt.Sprintf("chunkcodec: step %d out of range [0, %d)", i, c.hdr.NumSteps))
	}
	lo, hi := i*dc.stepBytes, (i+1)*dc.stepBytes
	return tensor.Tensor{
		DType: dc.batched.DType,
		Shape: c.hdr.Columns[col].Shape,
		Data:  dc.batched.Data[lo:hi:hi],
	}
}

// Column returns column col as the Column it was encoded from: its name and
// its steps as views into the chunk. It panics if col is out of range.
func (c *Chunk) Column(col int) Column {
	steps := make([]tensor.Tensor, c.hdr.NumSteps)
	for i := range steps {
		steps[i] = c.Step(col, i)
	}
	return Column{Name: c.hdr.Columns[col].Name, Steps: steps}
}

// Decode decodes a chunk made by Encode, refusing chunks whose uncompressed
// payload exceeds MaxRawSize. src is not retained or modified: the chunk
// owns a fresh buffer. Errors wrap ErrCorrupt, ErrChecksum or ErrTooLarge.
func Decode(src []byte) (*Chunk, error) { return DecodeWithLimit(src, MaxRawSize) }

// DecodeWithLimit is Decode with a smaller limit on the uncompressed
// payload: chunks whose header declares more than maxRawSize bytes fail
// with ErrTooLarge before anything is allocated for them. A limit ≤ 0 or
// above MaxRawSize means MaxRawSize.
func DecodeWithLimit(src []byte, maxRawSize int) (*Chunk, error) {
	c := new(Chunk)
	if err := decode(c, src, maxRawSize, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// Decoder decodes a stream of chunks held in buffers that are never
// reused, such as received messages. Unlike Decode it keeps src: the
// columns of a chunk stored uncompressed and without delta encoding are
// views into src (no copy), so src must not be modified while the chunk or
// its tensors are in use, and their data is only as aligned as src is
// (Decode's 8-byte alignment does not hold). Other chunks are decoded
// into a fresh buffer, as by Decode. A Decoder also shares the column-name
// strings of the chunks it decodes. The zero Decoder is ready to use; it
// is not safe for concurrent use, the chunks it returns are.
type Decoder struct {
	// MaxRawSize limits the uncompressed payload as in DecodeWithLimit.
	MaxRawSize int

	names    map[string]string
	lastName string
}

// maxInterned bounds the column names a Decoder keeps.
const maxInterned = 256

// Decode decodes src, which the chunk may keep (see Decoder). The checksum
// and every header field are checked as by Decode.
func (d *Decoder) Decode(src []byte) (*Chunk, error) {
	c := new(Chunk)
	if err := decode(c, src, d.MaxRawSize, d); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeInto is Decode into c, replacing what c held: a Chunk reused for
// one chunk after another costs no allocation for chunks of one column of
// rank ≤ 3 stored uncompressed. Column data obtained from c earlier stays
// valid, but shapes (ColumnInfo.Shape and the tensors' Shape) share c's
// storage and change. On error c is left zero.
func (d *Decoder) DecodeInto(c *Chunk, src []byte) error {
	return decode(c, src, d.MaxRawSize, d)
}

// name returns b as a string, shared with earlier chunks.
func (d *Decoder) name(b []byte) string {
	if string(b) == d.lastName {
		return d.lastName
	}
	if s, ok := d.names[string(b)]; ok {
		d.lastName = s
		return s
	}
	s := string(b)
	if len(d.names) < maxInterned {
		if d.names == nil {
			d.names = make(map[string]string)
		}
		d.names[s] = s
	}
	return s
}

// decode decodes src into c: as Decode does when d is nil, as d.Decode does
// (keeping src where it can) otherwise. On error c is left zero.
func decode(c *Chunk, src []byte, maxRawSize int, d *Decoder) (err error) {
	if maxRawSize <= 0 || maxRawSize > MaxRawSize {
		maxRawSize = MaxRawSize
	}
	defer func() {
		if err != nil {
			*c = Chunk{}
		}
	}()
	var layBuf [8]colLayout
	hdr, payload, lay, err := parse(src, maxRawSize, layBuf[:0], c, d)
	if err != nil {
		return err
	}
	c.hdr = hdr

	var buf []byte
	switch {
	case hdr.Compressed:
		// Round the capacity up to a multiple of 8: Go's allocator aligns
		// such blocks to 8 bytes even when they are tiny, so with the
		// 8-byte column offsets every column's data is 8-byte aligned.
		buf = make([]byte, 0, align(hdr.RawSize))
		dec, err := sharedDecoder()
		if err != nil {
			return err
		}
		buf, err = dec.DecodeAll(payload, buf)
		if err != nil {
			return fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		if len(buf) != hdr.RawSize {
			return fmt.Errorf("%w: payload inflates to %d bytes, header says %d", ErrCorrupt, len(buf), hdr.RawSize)
		}
	case d != nil && !anyDelta(lay):
		buf = payload // used in place: nothing below writes to it
	case hdr.RawSize >= 16:
		// append allocates without zeroing what it copies over; blocks of
		// 16 bytes or more are 8-byte aligned.
		buf = append([]byte(nil), payload...)
	default:
		buf = append(make([]byte, 0, align(hdr.RawSize)), payload...)
	}

	if len(hdr.Columns) <= len(c.small.col) {
		c.cols = c.small.col[:len(hdr.Columns)]
	} else {
		c.cols = make([]decodedColumn, len(hdr.Columns))
	}
	n := hdr.NumSteps
	for i, l := range lay {
		end := l.offset + n*l.stepBytes
		data := buf[l.offset:end:end]
		if l.delta && l.stepBytes > 0 {
			for t := 1; t < n; t++ {
				deltaDecode(data[t*l.stepBytes:(t+1)*l.stepBytes], data[(t-1)*l.stepBytes:t*l.stepBytes], l.elemSize)
			}
		}
		c.cols[i] = decodedColumn{
			batched:   tensor.Tensor{DType: hdr.Columns[i].DType, Shape: l.shape, Data: data},
			stepBytes: l.stepBytes,
		}
	}
	return nil
}

func anyDelta(lay []colLayout) bool {
	for _, l := range lay {
		if l.delta {
			return true
		}
	}
	return false
}

// ParseHeader checks a chunk's magic, version, checksum and header and
// returns the header, without decompressing the payload. The checksum only
// shows that the bytes are those that were written: a chunk written with a
// malformed zstd payload passes ParseHeader and fails Decode. Errors are
// those of Decode.
func ParseHeader(src []byte) (Header, error) {
	var layBuf [8]colLayout
	h, _, _, err := parse(src, MaxRawSize, layBuf[:0], nil, nil)
	return h, err
}

// parse validates everything but the payload's contents and returns the
// header, the stored payload and the column layout. The header's tables go
// into c's inline storage when they fit (c may be nil); names are shared
// through d when it is not nil.
func parse(src []byte, limit int, lay []colLayout, c *Chunk, d *Decoder) (Header, []byte, []colLayout, error) {
	var h Header
	if len(src) < minChunkSize {
		return h, nil, nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(src))
	}
	if string(src[:len(magic)]) != magic {
		return h, nil, nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, src[:len(magic)])
	}
	if v := src[len(magic)]; v != Version {
		return h, nil, nil, fmt.Errorf("%w: unsupported version %d (want %d)", ErrCorrupt, v, Version)
	}
	body := src[:len(src)-checksumSize]
	stored := binary.LittleEndian.Uint32(src[len(body):])
	if computed := crc32.Checksum(body, castagnoli); computed != stored {
		return h, nil, nil, &checksumError{stored: stored, computed: computed}
	}
	flags := src[len(magic)+1]
	if flags&^flagCompressed != 0 {
		return h, nil, nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	h.Compressed = flags&flagCompressed != 0

	r := reader{b: body, off: len(magic) + 2}
	steps := r.uvarint("number of steps", 1, MaxSteps)
	ncols := r.uvarint("number of columns", 1, MaxColumns)
	rawSize := r.uvarint("raw size", 0, MaxRawSize)
	if r.err != nil {
		return h, nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, r.err)
	}
	// Every descriptor takes at least minDescSize bytes: bound the column
	// count by the input before allocating for it.
	if ncols > (len(body)-r.off)/minDescSize {
		return h, nil, nil, fmt.Errorf("%w: %d columns do not fit in %d bytes", ErrCorrupt, ncols, len(body)-r.off)
	}
	if rawSize > limit {
		return h, nil, nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrTooLarge, rawSize, limit)
	}
	h.NumSteps, h.RawSize = steps, rawSize
	var dims []int
	if c != nil && ncols <= len(c.small.info) {
		h.Columns = c.small.info[:ncols]
		dims = c.small.dims[:0]
	} else {
		h.Columns = make([]ColumnInfo, ncols)
		dims = make([]int, 0, 4*ncols)
	}
	end := 0
	for i := range h.Columns {
		ci := &h.Columns[i]
		nameLen := r.uvarint("name length", 1, MaxNameLen)
		name := r.bytes(nameLen)
		dtype := tensor.DType(r.byte())
		cflags := r.byte()
		rank := r.uvarint("rank", 0, MaxRank)
		if r.err != nil {
			return h, nil, nil, fmt.Errorf("%w: column %d: %v", ErrCorrupt, i, r.err)
		}
		if !dtype.Valid() {
			return h, nil, nil, fmt.Errorf("%w: column %d: unknown dtype %d", ErrCorrupt, i, uint8(dtype))
		}
		if cflags&^colFlagDelta != 0 {
			return h, nil, nil, fmt.Errorf("%w: column %d: unknown flags %#x", ErrCorrupt, i, cflags)
		}
		delta := cflags&colFlagDelta != 0
		if delta && (!dtype.IsInteger() || rank == 0) {
			return h, nil, nil, fmt.Errorf("%w: column %d: delta flag on %s of rank %d", ErrCorrupt, i, dtype, rank)
		}
		if rank > len(body)-r.off {
			return h, nil, nil, fmt.Errorf("%w: column %d: rank %d does not fit", ErrCorrupt, i, rank)
		}
		// The batched shapes [steps, dims...] of all columns share one
		// backing array; a step shape is the tail of its batched shape.
		// (If append moves dims, earlier shapes keep the old array.)
		first := len(dims)
		dims = append(dims, steps)
		for range rank {
			dims = append(dims, r.uvarint("dimension", 0, tensor.MaxElements))
		}
		if r.err != nil {
			return h, nil, nil, fmt.Errorf("%w: column %d: %v", ErrCorrupt, i, r.err)
		}
		batched := dims[first:len(dims):len(dims)]
		shape := batched[1:]
		elems, err := tensor.CheckShape(shape)
		if err != nil {
			return h, nil, nil, fmt.Errorf("%w: column %d: step shape: %v", ErrCorrupt, i, err)
		}
		// elems ≤ MaxElements and Size ≤ 8: no overflow.
		stepBytes := elems * dtype.Size()
		offset, newEnd, ok := placeColumn(end, steps, stepBytes, rawSize)
		if !ok {
			return h, nil, nil, fmt.Errorf("%w: columns need more than the %d bytes the header says", ErrCorrupt, rawSize)
		}
		end = newEnd
		var nm string
		if d != nil {
			nm = d.name(name)
		} else {
			nm = string(name)
		}
		*ci = ColumnInfo{Name: nm, DType: dtype, Shape: shape, Delta: delta}
		lay = append(lay, colLayout{offset: offset, stepBytes: stepBytes, elemSize: dtype.Size(), delta: delta, shape: batched})
	}
	if end != rawSize {
		return h, nil, nil, fmt.Errorf("%w: columns need %d bytes, header says %d", ErrCorrupt, end, rawSize)
	}
	if err := checkUniqueNames(h.Columns); err != nil {
		return h, nil, nil, err
	}
	payload := body[r.off:]
	if h.Compressed {
		if rawSize > len(payload)*maxZstdRatio {
			return h, nil, nil, fmt.Errorf("%w: %d compressed bytes cannot inflate to %d", ErrCorrupt, len(payload), rawSize)
		}
	} else if len(payload) != rawSize {
		return h, nil, nil, fmt.Errorf("%w: payload is %d bytes, header says %d", ErrCorrupt, len(payload), rawSize)
	}
	return h, payload, lay, nil
}

// checkUniqueNames rejects a header with two columns of the same name.
func checkUniqueNames(cols []ColumnInfo) error {
	if len(cols) <= 8 {
		for i := range cols {
			for j := range i {
				if cols[i].Name == cols[j].Name {
					return fmt.Errorf("%w: column name %q is used twice", ErrCorrupt, cols[i].Name)
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, len(cols))
	for i := range cols {
		if _, dup := seen[cols[i].Name]; dup {
			return fmt.Errorf("%w: column name %q is used twice", ErrCorrupt, cols[i].Name)
		}
		seen[cols[i].Name] = struct{}{}
	}
	return nil
}

// reader reads a header with bounds checks. The first failure sticks in err
// (without a sentinel; the caller adds ErrCorrupt and context) and later
// reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

// uvarint reads a uvarint that must lie in [lo, hi].
func (r *reader) uvarint(what string, lo, hi int) int {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.err = fmt.Errorf("bad or truncated %s", what)
		return 0
	}
	if x < uint64(lo) || x > uint64(hi) {
		r.err = fmt.Errorf("%s %d out of range [%d, %d]", what, x, lo, hi)
		return 0
	}
	r.off += n
	return int(x)
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.err = errors.New("truncated header")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.err = errors.New("truncated header")
		return nil
	}
	r.off += n
	return r.b[r.off-n : r.off]
}
