package chunkcodec

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Encoders and the decoder are shared by all goroutines.
//
// klauspost's Encoder.EncodeAll and Decoder.DecodeAll are safe for concurrent
// use: each Encoder/Decoder keeps its own pool of GOMAXPROCS internal
// encoder (or decoder) states and a call borrows one for its duration. So
// one long-lived Encoder per level and one Decoder are already a pool sized to
// the number of CPUs. A sync.Pool of *zstd.Encoder would be slower, not
// faster: the pool is emptied at every GC, and building an encoder allocates
// megabytes of match tables (more at the better levels), which would then be
// rebuilt after every collection. They are created lazily so a process that
// only uses one level (or only decodes) pays for nothing else.
var (
	encoders [numLevels]struct {
		once sync.Once
		enc  *zstd.Encoder
		err  error
	}
	decoderOnce sync.Once
	decoder     *zstd.Decoder
	decoderErr  error
)

// zstdLevels maps a Level to klauspost's encoder level.
var zstdLevels = [numLevels]zstd.EncoderLevel{
	LevelDefault: zstd.SpeedDefault,
	LevelFastest: zstd.SpeedFastest,
	LevelBetter:  zstd.SpeedBetterCompression,
	LevelBest:    zstd.SpeedBestCompression,
}

// encoderFor returns the shared encoder for a compressing level.
func encoderFor(l Level) (*zstd.Encoder, error) {
	e := &encoders[l]
	e.once.Do(func() {
		e.enc, e.err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstdLevels[l]),
			// The chunk has its own CRC-32C over everything; zstd's
			// xxhash would only cost time and 4 bytes.
			zstd.WithEncoderCRC(false),
		)
		if e.err != nil {
			e.err = fmt.Errorf("chunkcodec: creating zstd encoder: %w", e.err)
		}
	})
	return e.enc, e.err
}

// sharedDecoder returns the shared decoder.
func sharedDecoder() (*zstd.Decoder, error) {
	decoderOnce.Do(func() {
		decoder, decoderErr = zstd.NewReader(nil,
			// One decoder state per CPU for concurrent DecodeAll calls; no
			// goroutines are started since the decoder is never used as a
			// stream.
			zstd.WithDecoderConcurrency(0),
			// DecodeAll stops at cap(dst); the caller sizes dst to the
			// exact raw size from the header, so a hostile frame cannot
			// make the output grow beyond it.
			zstd.WithDecodeAllCapLimit(true),
			// A second, absolute bound on any one frame.
			zstd.WithDecoderMaxMemory(MaxRawSize),
			// Integrity is checked by the chunk's CRC-32C.
			zstd.IgnoreChecksum(true),
		)
		if decoderErr != nil {
			decoderErr = fmt.Errorf("chunkcodec: creating zstd decoder: %w", decoderErr)
		}
	})
	return decoder, decoderErr
}
