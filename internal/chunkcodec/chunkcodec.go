package chunkcodec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"

	"github.com/recall-rl/recall/internal/tensor"
)

// Format constants. See the package documentation for the layout.
const (
	// Version is the format version written by Encode. Decode accepts only
	// this version.
	Version = 1

	// MaxRawSize is the largest uncompressed payload Encode produces and
	// Decode accepts: 1 GiB.
	MaxRawSize = 1 << 30

	// MaxSteps is the largest number of steps in a chunk. It bounds the
	// work and memory per decoded chunk even when steps hold no data.
	MaxSteps = 1 << 16

	// MaxColumns is the largest number of columns in a chunk.
	MaxColumns = 1 << 16

	// MaxNameLen is the longest column name, in bytes.
	MaxNameLen = 1024

	// MaxRank is the largest rank of one step of a column.
	MaxRank = 32
)

const (
	magic = "RCHK"

	// Header flags.
	flagCompressed = 1 << 0

	// Column descriptor flags.
	colFlagDelta = 1 << 0

	// minCompressSize is the smallest payload worth giving to zstd: a zstd
	// frame costs about 6 to 9 bytes of headers, so shorter payloads rarely
	// shrink.
	minCompressSize = 64

	// checksumSize is the size of the trailing CRC-32C.
	checksumSize = 4

	// minChunkSize is the shortest well-formed chunk: magic, version,
	// flags, three one-byte uvarints, one minimal column descriptor and the
	// checksum.
	minChunkSize = len(magic) + 2 + 3 + minDescSize + checksumSize

	// minDescSize is the shortest column descriptor: a one-byte name and
	// a scalar step.
	minDescSize = 1 + 1 + 1 + 1 + 1

	// maxZstdRatio bounds how much a zstd payload can inflate: every block
	// takes at least 4 bytes (3-byte header and one byte of content) and
	// decodes to at most 128 KiB.
	maxZstdRatio = 128 << 10 / 4

	// payloadAlign is the alignment of each column within the payload.
	payloadAlign = 8
)

// Errors returned (wrapped) by this package. Use errors.Is to test for them.
var (
	// ErrCorrupt means the bytes are not a well-formed chunk. Checksum
	// mismatches match it too.
	ErrCorrupt = errors.New("chunkcodec: corrupt chunk")
	// ErrChecksum means the chunk's checksum does not match its contents:
	// it was damaged or truncated after encoding.
	ErrChecksum = errors.New("chunkcodec: checksum mismatch")
	// ErrInvalidColumn means the columns given to Encode do not form a
	// chunk: no columns or steps, bad or repeated names, malformed tensors,
	// or steps whose dtype or shape differ within a column.
	ErrInvalidColumn = errors.New("chunkcodec: invalid column")
	// ErrTooLarge means the uncompressed payload is larger than MaxRawSize
	// (or the limit given to DecodeWithLimit).
	ErrTooLarge = errors.New("chunkcodec: chunk too large")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumError reports a checksum mismatch; it matches both ErrChecksum and
// ErrCorrupt.
type checksumError struct{ stored, computed uint32 }

func (e *checksumError) Error() string {
	return fmt.Sprintf("%v: stored %08x, computed %08x", ErrChecksum, e.stored, e.computed)
}

func (e *checksumError) Is(target error) bool { return target == ErrChecksum || target == ErrCorrupt }

// Column is one named column of a chunk: the consecutive steps of one field
// of a trajectory. All steps must have the same dtype and shape.
type Column struct {
	Name  string
	Steps []tensor.Tensor
}

// Level is a zstd compression level, or LevelNone.
type Level int

// Compression levels. The zero value is LevelDefault. They map to
// klauspost/compress's zstd.SpeedFastest, SpeedDefault,
// SpeedBetterCompression and SpeedBestCompression; LevelNone stores the
// payload raw.
//
// LevelFastest and LevelDefault only gain where the data repeats (zeros,
// constant or slowly changing values, delta-encoded counters); on data
// without repeats, such as noisy float observations, they give up quickly
// and the chunk is stored raw. LevelBetter and LevelBest also entropy-code
// such data, which saves about 10% on uniformly random float32 values at a
// much higher cost (see the benchmarks).
const (
	LevelDefault Level = iota
	LevelFastest
	LevelBetter
	LevelBest
	LevelNone

	numLevels = LevelNone // the number of compressing levels
)

var levelNames = [...]string{
	LevelDefault: "default",
	LevelFastest: "fastest",
	LevelBetter:  "better",
	LevelBest:    "best",
	LevelNone:    "none",
}

// String returns the level's name, e.g. "fastest".
func (l Level) String() string {
	if l >= 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Options control encoding. The zero value compresses at LevelDefault
// without delta encoding.
type Options struct {
	// Level is the zstd level; LevelNone disables compression. Whatever
	// the level, payloads that are tiny or that zstd does not shrink are
	// stored raw.
	Level Level

	// DeltaEncode delta encodes integer columns whose steps have rank ≥ 1
	// along the time axis before compression. Other columns are stored
	// plain.
	DeltaEncode bool
}

// colLayout is where one column lives in the uncompressed payload.
type colLayout struct {
	offset    int // start of the column's batched data
	stepBytes int // bytes per step
	elemSize  int // bytes per element
	delta     bool
	shape     []int // batched shape [steps, dims...]; set by the decoder only
}

// align rounds n up to a multiple of payloadAlign.
func align(n int) int { return (n + payloadAlign - 1) &^ (payloadAlign - 1) }

// placeColumn appends a column of steps steps of stepBytes bytes to a payload
// that currently ends at end, and returns the column's offset and the new
// end. ok is false if the payload would exceed limit (at most MaxRawSize, so
// nothing here can overflow an int).
func placeColumn(end, steps, stepBytes, limit int) (offset, newEnd int, ok bool) {
	offset = align(end)
	if offset > limit {
		return 0, 0, false
	}
	if stepBytes != 0 && steps > (limit-offset)/stepBytes {
		return 0, 0, false
	}
	return offset, offset + steps*stepBytes, true
}

// Encode encodes the columns as one chunk in a newly allocated slice. See
// AppendEncode.
func Encode(cols []Column, opts Options) ([]byte, error) {
	return AppendEncode(nil, cols, opts)
}

// AppendEncode appends the chunk encoding of cols to dst and returns the
// extended slice. On error dst is returned unchanged. Reusing dst between
// calls avoids allocating the output.
//
// Every column must have the same number of steps (at least one), a unique
// non-empty name of at most MaxNameLen bytes, and steps of one dtype and
// shape of rank at most MaxRank; otherwise the error wraps ErrInvalidColumn.
func AppendEncode(dst []byte, cols []Column, opts Options) ([]byte, error) {
	if opts.Level < 0 || opts.Level > LevelNone {
		return dst, fmt.Errorf("chunkcodec: unknown compression level %d", int(opts.Level))
	}
	var layBuf [8]colLayout
	lay, rawSize, _, err := planEncode(layBuf[:0], cols, opts)
	if err != nil {
		return dst, err
	}

	var hdrBuf [128]byte
	compress := opts.Level != LevelNone && rawSize >= minCompressSize
	if !compress && !anyDelta(lay) && len(cols)*(len(cols[0].Steps)+1) < maxParts {
		// The payload is the steps themselves, with alignment gaps:
		// gather them straight into the output.
		var parts [maxParts][]byte
		parts[0] = appendHeader(hdrBuf[:0], cols, lay, rawSize, 0)
		k, end := 1, 0
		for i := range cols {
			parts[k] = zeroPad[:lay[i].offset-end]
			k++
			for _, st := range cols[i].Steps {
				parts[k] = st.Data
				k++
			}
			end = lay[i].offset + len(cols[i].Steps)*lay[i].stepBytes
		}
		return appendChunk(dst, parts[:k]), nil
	}

	// The payload is transformed (delta encoded, compressed): assemble it
	// in a scratch buffer first.
	raw := getBuf(rawSize)
	defer putBuf(raw)
	fillPayload(*raw, cols, lay)
	if !compress {
		return appendChunk(dst, [][]byte{appendHeader(hdrBuf[:0], cols, lay, rawSize, 0), *raw}), nil
	}
	enc, err := encoderFor(opts.Level)
	if err != nil {
		return dst, err
	}
	comp := getBuf(enc.MaxEncodedSize(rawSize))
	defer putBuf(comp)
	*comp = enc.EncodeAll(*raw, (*comp)[:0])
	payload, flags := *raw, byte(0)
	if len(*comp) < rawSize {
		payload, flags = *comp, flagCompressed
	}
	return appendChunk(dst, [][]byte{appendHeader(hdrBuf[:0], cols, lay, rawSize, flags), payload}), nil
}

// maxParts is the most parts appendChunk takes.
const maxParts = 16

// zeroPad supplies alignment gaps and the checksum's placeholder.
var zeroPad [max(payloadAlign, checksumSize)]byte

// appendChunk appends the concatenation of parts (at most maxParts) and
// its CRC-32C to dst.
// When dst lacks room, the output is allocated without being zeroed first
// (bytes.Join): copying the parts in is then the only write to it, which
// matters for chunks of hundreds of kilobytes.
func appendChunk(dst []byte, parts [][]byte) []byte {
	start := len(dst)
	n := checksumSize
	for _, p := range parts {
		n += len(p)
	}
	if cap(dst)-len(dst) >= n {
		for _, p := range parts {
			dst = append(dst, p...)
		}
		dst = append(dst, zeroPad[:checksumSize]...)
	} else {
		var all [maxParts + 2][]byte
		all[0] = dst
		k := 1
		for _, p := range parts { // not copy: escape analysis would move the parts to the heap
			all[k] = p
			k++
		}
		all[k] = zeroPad[:checksumSize]
		dst = bytes.Join(all[:k+1], nil)
	}
	end := len(dst) - checksumSize
	binary.LittleEndian.PutUint32(dst[end:], crc32.Checksum(dst[start:end], castagnoli))
	return dst
}

// planEncode validates the columns and computes their layout, the
// uncompressed payload size and the header size.
func planEncode(lay []colLayout, cols []Column, opts Options) (_ []colLayout, rawSize, hdrSize int, err error) {
	if len(cols) == 0 {
		return nil, 0, 0, fmt.Errorf("%w: no columns", ErrInvalidColumn)
	}
	if len(cols) > MaxColumns {
		return nil, 0, 0, fmt.Errorf("%w: %d columns, at most %d allowed", ErrInvalidColumn, len(cols), MaxColumns)
	}
	steps := len(cols[0].Steps)
	if steps == 0 {
		return nil, 0, 0, fmt.Errorf("%w: column %q has no steps", ErrInvalidColumn, cols[0].Name)
	}
	if steps > MaxSteps {
		return nil, 0, 0, fmt.Errorf("%w: %d steps, at most %d allowed", ErrInvalidColumn, steps, MaxSteps)
	}
	hdrSize = len(magic) + 2 + uvarintLen(uint64(steps)) + uvarintLen(uint64(len(cols)))
	var names map[string]struct{}
	if len(cols) > 8 {
		names = make(map[string]struct{}, len(cols))
	}
	for i := range cols {
		c := &cols[i]
		if err := checkName(cols, i, names); err != nil {
			return nil, 0, 0, err
		}
		if len(c.Steps) != steps {
			return nil, 0, 0, fmt.Errorf("%w: column %q has %d steps, column %q has %d",
				ErrInvalidColumn, c.Name, len(c.Steps), cols[0].Name, steps)
		}
		first := c.Steps[0]
		if err := first.Validate(); err != nil {
			return nil, 0, 0, fmt.Errorf("%w: column %q step 0: %w", ErrInvalidColumn, c.Name, err)
		}
		if len(first.Shape) > MaxRank {
			return nil, 0, 0, fmt.Errorf("%w: column %q has rank %d, at most %d allowed", ErrInvalidColumn, c.Name, len(first.Shape), MaxRank)
		}
		stepBytes := len(first.Data)
		for t := 1; t < steps; t++ {
			s := c.Steps[t]
			if s.DType != first.DType || !slices.Equal(s.Shape, first.Shape) {
				return nil, 0, 0, fmt.Errorf("%w: column %q step %d is %s%v, step 0 is %s%v",
					ErrInvalidColumn, c.Name, t, s.DType, s.Shape, first.DType, first.Shape)
			}
			if len(s.Data) != stepBytes {
				return nil, 0, 0, fmt.Errorf("%w: column %q step %d: %w: %s%v needs %d bytes, has %d",
					ErrInvalidColumn, c.Name, t, tensor.ErrInvalid, s.DType, s.Shape, stepBytes, len(s.Data))
			}
		}
		offset, end, ok := placeColumn(rawSize, steps, stepBytes, MaxRawSize)
		if !ok {
			return nil, 0, 0, fmt.Errorf("%w: the columns up to %q hold more than %d bytes", ErrTooLarge, c.Name, MaxRawSize)
		}
		rawSize = end
		lay = append(lay, colLayout{
			offset:    offset,
			stepBytes: stepBytes,
			elemSize:  first.DType.Size(),
			delta:     opts.DeltaEncode && first.DType.IsInteger() && len(first.Shape) > 0,
		})
		hdrSize += uvarintLen(uint64(len(c.Name))) + len(c.Name) + 2 + uvarintLen(uint64(len(first.Shape)))
		for _, d := range first.Shape {
			hdrSize += uvarintLen(uint64(d))
		}
	}
	hdrSize += uvarintLen(uint64(rawSize))
	return lay, rawSize, hdrSize, nil
}

// checkName checks that column i's name is well formed and not used by an
// earlier column. names, if not nil, holds the earlier names.
func checkName(cols []Column, i int, names map[string]struct{}) error {
	name := cols[i].Name
	if name == "" {
		return fmt.Errorf("%w: column %d has no name", ErrInvalidColumn, i)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: column %d name is %d bytes, at most %d allowed", ErrInvalidColumn, i, len(name), MaxNameLen)
	}
	dup := false
	if names != nil {
		_, dup = names[name]
		names[name] = struct{}{}
	} else {
		for j := range i {
			dup = dup || cols[j].Name == name
		}
	}
	if dup {
		return fmt.Errorf("%w: column name %q is used twice", ErrInvalidColumn, name)
	}
	return nil
}

// appendHeader appends the chunk header; the columns must have passed
// planEncode.
func appendHeader(dst []byte, cols []Column, lay []colLayout, rawSize int, flags byte) []byte {
	dst = append(dst, magic...)
	dst = append(dst, Version, flags)
	dst = binary.AppendUvarint(dst, uint64(len(cols[0].Steps)))
	dst = binary.AppendUvarint(dst, uint64(len(cols)))
	dst = binary.AppendUvarint(dst, uint64(rawSize))
	for i := range cols {
		c := &cols[i]
		first := c.Steps[0]
		var cflags byte
		if lay[i].delta {
			cflags |= colFlagDelta
		}
		dst = binary.AppendUvarint(dst, uint64(len(c.Name)))
		dst = append(dst, c.Name...)
		dst = append(dst, byte(first.DType), cflags)
		dst = binary.AppendUvarint(dst, uint64(len(first.Shape)))
		for _, d := range first.Shape {
			dst = binary.AppendUvarint(dst, uint64(d))
		}
	}
	return dst
}

// fillPayload writes the uncompressed payload, delta encoding the columns
// marked for it. p must be exactly the payload size; alignment gaps are
// zeroed because p may be a reused buffer.
func fillPayload(p []byte, cols []Column, lay []colLayout) {
	end := 0
	for i := range cols {
		l := lay[i]
		clear(p[end:l.offset])
		steps := cols[i].Steps
		for t := range steps {
			out := p[l.offset+t*l.stepBytes : l.offset+(t+1)*l.stepBytes]
			if l.delta && t > 0 {
				deltaEncode(out, steps[t].Data, steps[t-1].Data, l.elemSize)
			} else {
				copy(out, steps[t].Data)
			}
		}
		end = l.offset + len(steps)*l.stepBytes
	}
	clear(p[end:])
}

// uvarintLen returns the length of the uvarint encoding of x.
func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// maxPooledBuf is the largest scratch buffer kept for reuse; bigger ones are
// left to the garbage collector so a rare huge chunk does not pin memory.
const maxPooledBuf = 16 << 20

var bufPool sync.Pool // of *[]byte

// getBuf returns a scratch buffer of length n.
func getBuf(n int) *[]byte {
	if b, ok := bufPool.Get().(*[]byte); ok {
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
		bufPool.Put(b)
	}
	b := make([]byte, n)
	return &b
}

// putBuf returns a scratch buffer to the pool.
func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bufPool.Put(b)
	}
}
