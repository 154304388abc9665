// Package chunkcodec encodes and decodes trajectory chunks: several
// consecutive steps of one or more named columns, packed into one
// self-describing, checksummed byte string.
//
// Actors encode chunks (Encode, AppendEncode), the replay server stores and
// forwards the bytes without looking inside (it may call ParseHeader to check
// a chunk's columns against a table signature without decompressing), and
// learners decode them (Decode).
//
// # Columns and steps
//
// A chunk holds N steps (1 ≤ N ≤ MaxSteps) of C ≥ 1 columns. All steps of
// one column have the same dtype and shape; every column has the same number
// of steps. The encoder batches each column into one [N, shape...] tensor. A
// decoded Chunk gives back the batched tensor of a column (Chunk.Batched) and
// each step as a view into it (Chunk.Step), without copying.
//
// # Compression and delta encoding
//
// The payload is compressed with zstd (github.com/klauspost/compress) at the
// level chosen in Options. Payloads shorter than 64 bytes, payloads that zstd
// does not make smaller, and chunks encoded with LevelNone are stored raw; a
// header flag says which.
//
// With Options.DeltaEncode, integer columns whose steps have rank ≥ 1 are
// delta encoded along the time axis before compression: step t is replaced by
// step t minus step t-1, element by element, with two's complement wrapping
// (step 0 is kept). Slowly changing integer data such as counters, frame
// indices and timestamps then compresses better: in this package's tests,
// int64 counters with small or constant increments come out 2 to 12 times
// smaller than without delta encoding. Data that jumps at random gains
// little. Float and bool columns and scalar steps are always stored plain.
// This follows Reverb's rule (integer dtypes, batched rank ≥ 2).
//
// # Format (version 1)
//
// All integers are little-endian; "uvarint" is encoding/binary's unsigned
// varint.
//
//	magic         4 bytes   "RCHK"
//	version       1 byte    1
//	flags         1 byte    bit 0: payload is zstd-compressed; other bits 0
//	num steps     uvarint   1 ≤ N ≤ MaxSteps
//	num columns   uvarint   1 ≤ C ≤ MaxColumns
//	raw size      uvarint   length of the uncompressed payload
//	C column descriptors:
//	  name length uvarint   1..MaxNameLen
//	  name        bytes     unique within the chunk
//	  dtype       1 byte    tensor.DType
//	  col flags   1 byte    bit 0: delta encoded; other bits 0
//	  rank        uvarint   rank of one step, ≤ MaxRank
//	  dims        rank × uvarint, each ≤ tensor.MaxElements
//	payload       the rest up to the checksum: raw, or one or more zstd frames
//	checksum      4 bytes   CRC-32C (Castagnoli) of every byte before it
//
// The uncompressed payload is the columns' batched data in descriptor order.
// Each column starts at an offset that is a multiple of 8, the gap before it
// filled with zero bytes (ignored when decoding), so the data of a decoded
// column is 8-byte aligned.
// The raw size in the header must equal the size implied by the descriptors;
// it is also the exact size the compressed payload must inflate to.
//
// # Safety limits
//
// Decode never panics on malformed input and returns errors wrapping
// ErrCorrupt, ErrChecksum or ErrTooLarge. Every length is bounds-checked
// before use. A chunk whose uncompressed payload would exceed MaxRawSize
// (1 GiB), or the smaller limit passed to DecodeWithLimit, is refused before
// any large allocation. A compressed payload may not declare more than it
// could possibly inflate to (32768 times its size, the zstd maximum), and it
// must inflate to exactly the declared size: zstd is stopped at that size.
// So a hostile chunk cannot make the decoder allocate more than the limit,
// or more than 32768 times its own size. Encode refuses to produce chunks
// Decode would refuse.
//
// # Concurrency
//
// All functions are safe for concurrent use. A decoded Chunk is read-only
// and may be shared between goroutines.
package chunkcodec
