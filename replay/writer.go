package replay

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/table"
)

// This file holds the TrajectoryWriter: the actor side of the replay
// service, modelled on Reverb's TrajectoryWriter.
//
// # Model
//
// A Writer receives steps (Append), one map of named column values per step.
// Each column has its own chunker: its consecutive values are gathered into
// chunks of ChunkLength steps, encoded with internal/chunkcodec (one column
// per chunk) and kept while they are in the column's history window (the
// last HistoryLength steps) or used by an item the server has not yet
// acknowledged. Items (CreateItem) are built from references into the
// history (ColumnHistory.Slice, Last, Step) and queued; a background
// goroutine streams them, with the chunks they need, to the server on one
// Insert stream, and a second goroutine reads the acknowledgements.
//
// # The insert stream protocol
//
// The server keeps, per stream, the chunks it has received and not yet
// released ("pending"); after inserting a request's items it releases the
// pending chunks listed in the request's release_chunk_keys. The writer
// mirrors that set exactly (a chunk's stream field): it changes only when
// the sender builds a request, and requests are built and sent in order by
// one goroutine. When a queued item is put into a request, the chunks it uses
// that are not in the mirror are added to that request. A chunk of the
// mirror is listed for release (and leaves the mirror) once no later
// request can need it, that is when it is neither
//
//   - still in its column's history window (an item created later may
//     reference any step of the window; an item can only reference steps in
//     the window when it is created, and the window only moves forward, so a
//     chunk that has left it is never needed by a new item), nor
//   - used by items that are queued but not yet sent on this stream (they
//     may have left the window already).
//
// Items already sent need nothing more: the server handles requests in
// order and releases only after a request's items are inserted, so an item
// is inserted before any release that could affect it, or the stream fails
// and everything is resent. Hence the server never lacks a chunk an item
// needs, and per stream it never holds more than the window's chunks plus
// those of queued items. A release list names only what changed, so a
// request costs the server nothing for the chunks it keeps.
//
// # Reconnection and resends
//
// When the stream fails with Unavailable (server restart, lost connection)
// the writer reopens it with a backoff of 1ms doubling to 1s, and resends
// every item not yet acknowledged, in creation order, with all the chunks
// they need (a new stream starts with no pending chunks). Item and chunk
// keys are random and fixed when the item is created, and the server treats
// a key it already holds as a priority update, so an item whose
// acknowledgement was lost is not duplicated. Any other error from the
// server (InvalidArgument, NotFound, ...) is sticky: the writer stops and
// every later call returns it.

// Compression selects how a Writer compresses its chunks.
type Compression int

// Compression levels. The zero value, CompressionFastest, is the default:
// actors are usually busy stepping environments, zstd's fastest level costs
// little CPU (of the order of Reverb's Snappy) while compressing typical
// observations (images, counters, small floats) much better, and stronger
// levels mostly pay off for data kept a long time, which replay is not.
const (
	// CompressionFastest is zstd's fastest level (the default).
	CompressionFastest Compression = iota
	// CompressionBalanced is zstd's default level.
	CompressionBalanced
	// CompressionBetter trades speed for a better ratio.
	CompressionBetter
	// CompressionBest is zstd's best (slowest) level.
	CompressionBest
	// CompressionNone stores chunks uncompressed.
	CompressionNone
)

var compressionLevels = [...]chunkcodec.Level{
	CompressionFastest:  chunkcodec.LevelFastest,
	CompressionBalanced: chunkcodec.LevelDefault,
	CompressionBetter:   chunkcodec.LevelBetter,
	CompressionBest:     chunkcodec.LevelBest,
	CompressionNone:     chunkcodec.LevelNone,
}

func (c Compression) valid() bool { return c >= 0 && int(c) < len(compressionLevels) }

// String returns the level's name, e.g. "fastest".
func (c Compression) String() string {
	if !c.valid() {
		return fmt.Sprintf("compression(%d)", int(c))
	}
	if c == CompressionBalanced {
		return "balanced"
	}
	return compressionLevels[c].String()
}

// ParseCompression parses a compression name as printed by String:
// "fastest", "balanced", "better", "best" or "none".
func ParseCompression(name string) (Compression, error) {
	for c := Compression(0); c.valid(); c++ {
		if c.String() == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown compression %q (want fastest, balanced, better, best or none)", ErrInvalidArgument, name)
}

// maxUnackedMsgs bounds the insert requests a writer has in flight on its
// stream: enough to keep the server busy, few enough that items queued
// behind them are batched.
const maxUnackedMsgs = 4

// maxBatchBytes is the chunk data after which a request takes no more
// items: beyond a few megabytes, bigger messages amortise nothing more and
// only hold more memory in flight.
const maxBatchBytes = 4 << 20

// Defaults for WriterOptions.
const (
	DefaultChunkLength      = 1
	DefaultHistoryLength    = 128
	DefaultMaxInFlightItems = 1024
	DefaultItemsPerMessage  = 256
)

// Reconnection backoff of a Writer.
const (
	writerMinBackoff = time.Millisecond
	writerMaxBackoff = time.Second
)

// WriterOptions configure a Writer. Zero values get defaults.
type WriterOptions struct {
	// ChunkLength is the number of steps per chunk of each column.
	// Longer chunks compress better but an item that references a chunk
	// still being filled forces it to be encoded early (shorter). Default 1.
	ChunkLength int
	// HistoryLength is the number of most recent steps of each column that
	// items may reference (Reverb's num_keep_alive_refs); it bounds the
	// length of an item. Default max(ChunkLength, 128).
	HistoryLength int
	// MaxInFlightItems bounds the items created but not yet acknowledged by
	// the server; CreateItem blocks while that many are in flight.
	// Default 1024.
	MaxInFlightItems int
	// ItemsPerMessage caps the items sent in one insert request. Items are
	// sent as soon as the stream can take a request, so under light load
	// each goes alone (lowest latency); when the stream is busy, queued
	// items are batched up to this many, or up to 4 MiB (at most half the
	// client's maximum message size) of chunk data, whichever comes first.
	// Default 256: a message costs both ends a fixed amount of work
	// (wake-ups, system calls, an acknowledgement), which small items only
	// amortise over many per message; with the default MaxInFlightItems it
	// lets the writer keep four full messages in flight.
	ItemsPerMessage int
	// Compression of the chunks. Default CompressionFastest.
	Compression Compression
	// DeltaEncode delta-encodes integer columns of rank >= 1 along the time
	// axis before compression (see internal/chunkcodec).
	DeltaEncode bool
}

func (o *WriterOptions) ensureDefaults() {
	if o.ChunkLength == 0 {
		o.ChunkLength = DefaultChunkLength
	}
	if o.HistoryLength == 0 {
		o.HistoryLength = max(o.ChunkLength, DefaultHistoryLength)
	}
	if o.MaxInFlightItems == 0 {
		o.MaxInFlightItems = DefaultMaxInFlightItems
	}
	if o.ItemsPerMessage == 0 {
		o.ItemsPerMessage = DefaultItemsPerMessage
	}
}

func (o *WriterOptions) validate() error {
	switch {
	case o.ChunkLength < 1 || o.ChunkLength > chunkcodec.MaxSteps:
		return fmt.Errorf("%w: writer: chunk length %d must be in [1, %d]", ErrInvalidArgument, o.ChunkLength, chunkcodec.MaxSteps)
	case o.HistoryLength < 1:
		return fmt.Errorf("%w: writer: history length %d must be >= 1", ErrInvalidArgument, o.HistoryLength)
	case o.MaxInFlightItems < 1:
		return fmt.Errorf("%w: writer: max in-flight items %d must be >= 1", ErrInvalidArgument, o.MaxInFlightItems)
	case o.ItemsPerMessage < 1:
		return fmt.Errorf("%w: writer: items per message %d must be >= 1", ErrInvalidArgument, o.ItemsPerMessage)
	case !o.Compression.valid():
		return fmt.Errorf("%w: writer: unknown compression %d", ErrInvalidArgument, int(o.Compression))
	}
	return nil
}

// errStreamEnded is returned by a stream the server closed with an OK
// status although the writer had not finished; the writer reconnects.
var errStreamEnded = errors.New("replay: insert stream ended by the server")

// Writer writes trajectories to a replay server: it chunks and compresses
// appended steps, and inserts items that reference them into tables. It is
// Reverb's TrajectoryWriter.
//
// Typical use:
//
//	w, _ := client.NewWriter(replay.WriterOptions{ChunkLength: 5})
//	defer w.Close()
//	for each step {
//		w.Append(map[string]replay.Tensor{"obs": obs, "action": act})
//		if w.History("obs").Len() >= 3 {
//			w.CreateItem(ctx, "table", 1.0, w.History("obs").Last(3), w.History("action").Last(3))
//		}
//	}
//	w.EndEpisode(ctx, true) // or w.Flush(ctx)
//
// # Memory bound
//
// Per column the writer holds at most ChunkLength unencoded steps (the chunk
// being filled) and the encoded chunks covering the last HistoryLength
// steps. Beyond that it holds at most MaxInFlightItems unacknowledged items
// and the encoded chunks they use (each item only uses chunks that were in
// the history window when it was created). Nothing else grows: a writer
// whose server is gone blocks in CreateItem rather than buffer more. On the
// server, a writer's stream pins at most the chunks of its history windows
// that it has sent, plus those of items queued but not yet sent.
//
// A Writer's methods are safe for concurrent use, but steps are ordered, so
// normally one goroutine appends and creates items.
type Writer struct {
	c            *Client
	opts         WriterOptions
	codec        chunkcodec.Options
	batchBytes   int // chunk bytes after which a request takes no more items
	maxItemBytes int // chunk bytes a single item may need

	ctx    context.Context // ends when the writer closes
	cancel context.CancelFunc
	done   chan struct{} // closed when the run goroutine has exited
	kick   chan struct{} // wakes the sender (capacity 1)

	mu struct {
		sync.Mutex
		rng     *rand.ChaCha8
		closed  bool
		err     error         // sticky error; the writer is unusable
		changed chan struct{} // closed and replaced on acks, errors, close

		episode  uint64 // current episode id
		epStart  int64  // position of the current episode's first step
		pos      int64  // position of the open step (steps are numbered from 0 for the writer's life)
		base     int64  // position of history index 0 (moved by EndEpisode(clearBuffers))
		stepOpen bool   // some column has a value in the open step
		cols     map[string]*wcolumn
		names    []string // Append's scratch: the step's column names, sorted
		slab     []byte   // the block small chunks are encoded into (see encodeLocked)

		queue   []*witem          // unacknowledged items in creation order (acked ones trimmed from the front)
		sent    int               // queue[:sent] has been sent on the current stream
		pending map[uint64]*witem // unacknowledged items by key
		// releasable lists chunks the server holds that no later request
		// can need (out of the window, no unsent item uses them), to be
		// named in the next request's release list. It is kept up to date
		// as chunks leave the window and items are sent, so building a
		// request never scans the chunks.
		releasable []*wchunk

		// streams counts the insert streams opened; the current one is
		// number streams (see wchunk.stream).
		streams int
		// unackedMsgs counts requests sent on the current stream and not
		// yet acknowledged (every request carries items and gets one
		// response). The sender keeps at most maxUnackedMsgs in flight, so
		// under load items queue up and leave in full messages instead of
		// one message each.
		unackedMsgs int
	}
}

// wcolumn is one column's chunker and history.
type wcolumn struct {
	name  string
	dtype DType
	shape []int
	// spec describes the column in every chunk it makes; chunks are
	// immutable, so they all share it.
	spec   []table.ColumnSpec
	chunks []*wchunk // encoded chunks in the history window, in step order
	open   *wchunk   // chunk being filled, or nil
	inStep bool      // has a value in the open step
}

// wchunk is a chunk of one column: open (steps buffered) or encoded.
type wchunk struct {
	key     uint64
	episode uint64
	epStart int64        // position of its episode's first step
	start   int64        // position of its first step
	n       int          // steps
	steps   []Tensor     // while open
	data    *table.Chunk // once encoded
	// inWindow is set while the chunk is in its column's history window;
	// unsent counts the queued items using it that are not yet sent on the
	// current stream. A chunk on the server is kept while either holds.
	inWindow bool
	unsent   int
	// users counts the unacknowledged items using the chunk; buf, if not
	// nil, is the recycled buffer holding data (see recycleLocked).
	users int
	buf   *chunkBuf
	// stream is the number of the insert stream on which the server holds
	// the chunk (sent and not released), or 0. A new stream starts with
	// no chunk on the server, whatever older streams left.
	stream int
}

func (c *wchunk) end() int64 { return c.start + int64(c.n) }

// witem is an item created and not yet acknowledged.
type witem struct {
	ins    insertItem
	chunks []*wchunk // distinct chunks the trajectory uses
	acked  bool

	// Storage for the common small item (one column of one chunk), so that
	// it takes one allocation.
	trajBuf  [1]table.TrajectoryColumn
	sliceBuf [1]table.ChunkSlice
	chunkBuf [1]*wchunk
}

// NewWriter returns a Writer that inserts through c. The insert stream is
// opened when the first item is created. Close the writer when done; it
// does not close c.
func (c *Client) NewWriter(opts WriterOptions) (*Writer, error) {
	opts.ensureDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("replay: writer: seeding keys: %w", err)
	}
	maxMsg := c.opts.maxMessageBytes
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMessageBytes
	}
	w := &Writer{
		c:            c,
		opts:         opts,
		codec:        chunkcodec.Options{Level: compressionLevels[opts.Compression], DeltaEncode: opts.DeltaEncode},
		batchBytes:   min(maxMsg/2, maxBatchBytes),
		maxItemBytes: maxMsg - maxMsg/8,
		done:         make(chan struct{}),
		kick:         make(chan struct{}, 1),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.mu.rng = rand.NewChaCha8(seed)
	w.mu.changed = make(chan struct{})
	w.mu.cols = make(map[string]*wcolumn)
	w.mu.pending = make(map[uint64]*witem)
	w.mu.episode = w.newKeyLocked()
	go w.run()
	return w, nil
}

// newKeyLocked returns a random non-zero key.
func (w *Writer) newKeyLocked() uint64 {
	for {
		if k := w.mu.rng.Uint64(); k != 0 {
			return k
		}
	}
}

func (w *Writer) broadcastLocked() {
	close(w.mu.changed)
	w.mu.changed = make(chan struct{})
}

// usableLocked returns ErrClosed after Close, the sticky error after a
// failure, or nil.
func (w *Writer) usableLocked() error {
	if w.mu.closed {
		return fmt.Errorf("%w: writer", ErrClosed)
	}
	return w.mu.err
}

func (w *Writer) failLocked(err error) {
	if w.mu.err == nil {
		w.mu.err = fmt.Errorf("replay: writer stopped: %w", err)
		w.broadcastLocked()
	}
}

// --- steps ------------------------------------------------------------------

// Append adds a step: the given columns' values for the open step, which it
// then completes. Columns may be missing from a step (they have no value
// there, and items cannot reference them at that step). A column's dtype
// and step shape are fixed by its first value. Values are copied.
//
// Append fails with ErrInvalidArgument, changing nothing, for an invalid
// tensor, an empty column name, a dtype or shape that differs from the
// column's, or a column that already has a value in the open step (see
// AppendPartial).
func (w *Writer) Append(step map[string]Tensor) error { return w.append(step, true) }

// AppendPartial adds columns to the open step without completing it (Reverb's
// partial_step): later AppendPartial or Append calls add the other columns
// of the same step. The values already given can be referenced right away.
func (w *Writer) AppendPartial(step map[string]Tensor) error { return w.append(step, false) }

func (w *Writer) append(step map[string]Tensor, complete bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return err
	}
	add := func(name string, t Tensor) error {
		col := w.mu.cols[name]
		if col == nil {
			shape := slices.Clone(t.Shape)
			col = &wcolumn{name: name, dtype: t.DType, shape: shape,
				spec: []table.ColumnSpec{{Name: name, DType: t.DType, Shape: shape}}}
			w.mu.cols[name] = col
		}
		if err := w.addValueLocked(col, t); err != nil {
			w.failLocked(err)
			return w.mu.err
		}
		return nil
	}
	// Every value is checked before any is added.
	if len(step) == 1 { // the common case: one pass over the map, no sorting
		for name, t := range step {
			if err := w.checkValueLocked(name, t); err != nil {
				return err
			}
			if err := add(name, t); err != nil {
				return err
			}
		}
	} else {
		names := w.mu.names[:0]
		for name := range step {
			names = append(names, name)
		}
		slices.Sort(names)
		w.mu.names = names
		for _, name := range names {
			if err := w.checkValueLocked(name, step[name]); err != nil {
				return err
			}
		}
		for _, name := range names {
			if err := add(name, step[name]); err != nil {
				return err
			}
		}
	}
	if complete {
		w.endStepLocked()
	} else if len(step) > 0 {
		w.mu.stepOpen = true
	}
	return nil
}

func (w *Writer) checkValueLocked(name string, t Tensor) error {
	if name == "" || len(name) > chunkcodec.MaxNameLen {
		return fmt.Errorf("%w: writer: column name must have 1 to %d bytes, got %d", ErrInvalidArgument, chunkcodec.MaxNameLen, len(name))
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%w: writer: column %q: %w", ErrInvalidArgument, name, err)
	}
	if len(t.Shape) > chunkcodec.MaxRank {
		return fmt.Errorf("%w: writer: column %q has rank %d, at most %d allowed", ErrInvalidArgument, name, len(t.Shape), chunkcodec.MaxRank)
	}
	if len(t.Data) > 0 && w.opts.ChunkLength > chunkcodec.MaxRawSize/len(t.Data) {
		return fmt.Errorf("%w: writer: column %q: %d steps of %d bytes exceed the chunk size limit", ErrInvalidArgument, name, w.opts.ChunkLength, len(t.Data))
	}
	col := w.mu.cols[name]
	if col == nil {
		return nil
	}
	if col.dtype != t.DType || !slices.Equal(col.shape, t.Shape) {
		return fmt.Errorf("%w: writer: column %q is %s%v, got %s%v", ErrInvalidArgument, name, col.dtype, col.shape, t.DType, t.Shape)
	}
	if col.inStep {
		return fmt.Errorf("%w: writer: column %q already has a value in the open step", ErrInvalidArgument, name)
	}
	return nil
}

// addValueLocked appends a copy of t to col's open chunk at the open step,
// encoding the chunk when it is full. A chunk holds consecutive steps only:
// after a step without a value the open chunk is encoded first.
func (w *Writer) addValueLocked(col *wcolumn, t Tensor) error {
	p := w.mu.pos
	if o := col.open; o != nil && o.end() != p {
		if err := w.finalizeLocked(col); err != nil {
			return err
		}
	}
	if col.open == nil {
		col.open = &wchunk{key: w.newKeyLocked(), episode: w.mu.episode, epStart: w.mu.epStart, start: p}
	}
	o := col.open
	o.n++
	col.inStep = true
	if o.n >= w.opts.ChunkLength {
		// The step completes the chunk: encode it straight from the
		// caller's tensor, which the encoder copies, instead of keeping a
		// copy of our own.
		o.steps = append(o.steps, t)
		return w.finalizeLocked(col)
	}
	o.steps = append(o.steps, Tensor{DType: t.DType, Shape: col.shape, Data: bytes.Clone(t.Data)})
	return nil
}

// finalizeLocked encodes col's open chunk and moves it to the history.
func (w *Writer) finalizeLocked(col *wcolumn) error {
	c := col.open
	col.open = nil
	data, buf, err := w.encodeLocked(chunkcodec.Column{Name: col.name, Steps: c.steps})
	if err != nil {
		return fmt.Errorf("encoding chunk of column %q: %w", col.name, err)
	}
	c.steps = nil
	c.data = &table.Chunk{
		Key:       c.key,
		EpisodeID: c.episode,
		Start:     c.start - c.epStart,
		Length:    int32(c.n),
		Columns:   col.spec,
		Data:      data,
	}
	c.buf = buf
	c.inWindow = true
	col.chunks = append(col.chunks, c)
	return nil
}

// leaveWindowLocked marks a chunk as out of its column's history window.
func (w *Writer) leaveWindowLocked(c *wchunk) {
	c.inWindow = false
	w.checkReleasableLocked(c)
	w.recycleLocked(c)
}

// onServerLocked reports whether the server holds c for the current
// stream.
func (w *Writer) onServerLocked(c *wchunk) bool {
	return c.stream != 0 && c.stream == w.mu.streams
}

// checkReleasableLocked queues c for release once the server holds it and
// no later request can need it. It is called on the two transitions that
// can make that true (leaving the window, the last unsent item using it
// being sent), each of which happens once per chunk and stream.
func (w *Writer) checkReleasableLocked(c *wchunk) {
	if w.onServerLocked(c) && !c.inWindow && c.unsent == 0 {
		w.mu.releasable = append(w.mu.releasable, c)
	}
}

// endStepLocked completes the open step and drops chunks that left the
// history window (items still using them keep them alive).
func (w *Writer) endStepLocked() {
	w.mu.pos++
	w.mu.stepOpen = false
	ws := w.windowStartLocked()
	for _, col := range w.mu.cols {
		col.inStep = false
		i := 0
		for i < len(col.chunks) && col.chunks[i].end() <= ws {
			w.leaveWindowLocked(col.chunks[i])
			i++
		}
		clear(col.chunks[:i])
		col.chunks = col.chunks[i:]
	}
}

// windowEndLocked returns the position after the last step that has begun.
func (w *Writer) windowEndLocked() int64 {
	if w.mu.stepOpen {
		return w.mu.pos + 1
	}
	return w.mu.pos
}

// windowStartLocked returns the first position items may reference.
func (w *Writer) windowStartLocked() int64 {
	return max(w.mu.base, w.windowEndLocked()-int64(w.opts.HistoryLength))
}

// EndEpisode ends the episode: it completes an open partial step, encodes
// every column's open chunk, starts a new episode (new random id, step
// index 0) and then waits like Flush for every item to be acknowledged.
// With clearBuffers the history is emptied (History(...).Len() becomes 0);
// without it the previous steps stay referable, so items may span
// episodes. The episode ends even if the wait fails (ctx ended, sticky
// error).
func (w *Writer) EndEpisode(ctx context.Context, clearBuffers bool) error {
	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	if w.mu.stepOpen {
		w.endStepLocked()
	}
	for _, col := range w.mu.cols {
		if col.open != nil {
			if err := w.finalizeLocked(col); err != nil {
				w.failLocked(err)
				err := w.mu.err
				w.mu.Unlock()
				return err
			}
		}
	}
	w.mu.episode = w.newKeyLocked()
	w.mu.epStart = w.mu.pos
	if clearBuffers {
		w.mu.base = w.mu.pos
		for _, col := range w.mu.cols {
			for _, c := range col.chunks {
				w.leaveWindowLocked(c)
			}
			col.chunks = nil
		}
	}
	w.mu.Unlock()
	return w.Flush(ctx)
}

// EpisodeID returns the id of the current episode (random, new after each
// EndEpisode).
func (w *Writer) EpisodeID() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.episode
}

// EpisodeStep returns the index within the episode of the open step: the
// number of steps the episode has completed.
func (w *Writer) EpisodeStep() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int(w.mu.pos - w.mu.epStart)
}

// --- history and references -------------------------------------------------

// ColumnHistory gives references to the recent values of one column.
// Indexes count steps since the writer started or since the last
// EndEpisode with clearBuffers (so within an episode they are the episode's
// step indexes); only the last HistoryLength steps can be used in items.
type ColumnHistory struct {
	w    *Writer
	name string
}

// History returns the history of column. The column need not exist yet.
func (w *Writer) History(column string) ColumnHistory { return ColumnHistory{w: w, name: column} }

// Name returns the column's name.
func (h ColumnHistory) Name() string { return h.name }

// Len returns the number of steps in the history: completed steps, plus
// the open step if this column has a value in it (after AppendPartial).
// Steps where the column has no value count too.
func (h ColumnHistory) Len() int {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	return int(h.lenLocked())
}

func (h ColumnHistory) lenLocked() int64 {
	n := h.w.mu.pos - h.w.mu.base
	if col := h.w.mu.cols[h.name]; col != nil && col.inStep {
		n++
	}
	return n
}

// Slice references steps [start, end) of the column; the item column it
// makes has end-start steps. Bad bounds are reported by CreateItem.
func (h ColumnHistory) Slice(start, end int) ColumnRef { return h.ref(start, end, false) }

// Last references the last n steps of the column.
func (h ColumnHistory) Last(n int) ColumnRef {
	l := h.Len()
	return h.ref(l-n, l, false)
}

// Step references the single step i, squeezed: the item column has the
// step's shape, without a leading step dimension.
func (h ColumnHistory) Step(i int) ColumnRef { return h.ref(i, i+1, true) }

func (h ColumnHistory) ref(start, end int, squeeze bool) ColumnRef {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	r := ColumnRef{w: h.w, name: h.name, start: h.w.mu.base + int64(start), end: h.w.mu.base + int64(end), squeeze: squeeze}
	if n := h.lenLocked(); start < 0 || end > int(n) || start >= end {
		r.err = fmt.Errorf("%w: writer: column %q: steps [%d, %d) are not in a history of %d steps", ErrInvalidArgument, h.name, start, end, n)
	}
	return r
}

// ColumnRef references consecutive steps of one column in a Writer's
// history; it becomes one column of an item. Make it with ColumnHistory's
// Slice, Last or Step. A reference stays valid while its steps are in the
// history window (the last HistoryLength steps, not cleared by EndEpisode).
type ColumnRef struct {
	w          *Writer
	name       string
	start, end int64 // positions
	squeeze    bool
	err        error
}

// Len returns the number of steps referenced.
func (r ColumnRef) Len() int { return int(r.end - r.start) }

// Err returns the error found when the reference was made (bad bounds),
// which CreateItem would return.
func (r ColumnRef) Err() error { return r.err }

// --- items ------------------------------------------------------------------

// CreateItem queues an item for table with the given priority whose
// columns are the given references, in order, and returns once it is
// queued; Flush waits for the server to insert it. The chunks the item
// uses that are still being filled are encoded now, so the item never
// waits for later steps.
//
// It blocks while MaxInFlightItems items are unacknowledged (back-pressure),
// until one is acknowledged, the writer closes or fails, or ctx ends (then
// the item is not created and the error matches ctx.Err()).
//
// A NaN, infinite or negative priority, an empty table name, no columns, or
// a reference that is out of bounds, left the history window, covers a step
// where its column has no value, or comes from another writer, fail at once
// with ErrInvalidArgument; the writer stays usable. Errors from the server
// (an unknown table, a signature mismatch) are sticky: they are returned
// by a later call and the writer is unusable.
func (w *Writer) CreateItem(ctx context.Context, tableName string, priority float64, columns ...ColumnRef) error {
	if tableName == "" {
		return fmt.Errorf("%w: writer: item needs a table name", ErrInvalidArgument)
	}
	if math.IsNaN(priority) || math.IsInf(priority, 0) || priority < 0 {
		return fmt.Errorf("%w: writer: priority %v (must be finite and >= 0)", ErrInvalidArgument, priority)
	}
	if len(columns) == 0 {
		return fmt.Errorf("%w: writer: item has no columns", ErrInvalidArgument)
	}
	for i, r := range columns {
		if r.w != w {
			return fmt.Errorf("%w: writer: item column %d is not a reference into this writer's history", ErrInvalidArgument, i)
		}
		if r.err != nil {
			return fmt.Errorf("item column %d: %w", i, r.err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if err := w.usableLocked(); err != nil {
			return err
		}
		if len(w.mu.pending) < w.opts.MaxInFlightItems {
			break
		}
		ch := w.mu.changed
		w.mu.Unlock()
		select {
		case <-ch:
			w.mu.Lock()
		case <-ctx.Done():
			w.mu.Lock()
			return fmt.Errorf("replay: writer: %d items in flight (MaxInFlightItems): %w", len(w.mu.pending), ctx.Err())
		}
	}
	it, err := w.buildItemLocked(tableName, priority, columns)
	if err != nil {
		return err
	}
	w.mu.queue = append(w.mu.queue, it)
	w.mu.pending[it.ins.key] = it
	for _, c := range it.chunks {
		c.unsent++
		c.users++
	}
	w.wakeSender()
	return nil
}

// wakeSender tells the sender there may be something to send.
func (w *Writer) wakeSender() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// buildItemLocked checks the references against the history, encodes the
// open chunks they touch and builds the item's trajectory.
func (w *Writer) buildItemLocked(tableName string, priority float64, refs []ColumnRef) (*witem, error) {
	ws := w.windowStartLocked()
	cols := make([]*wcolumn, len(refs))
	for i, r := range refs {
		col := w.mu.cols[r.name]
		if col == nil {
			return nil, fmt.Errorf("%w: writer: item column %d: column %q has no values", ErrInvalidArgument, i, r.name)
		}
		if r.start < ws {
			return nil, fmt.Errorf("%w: writer: item column %d: step %d of column %q is no longer in the history (HistoryLength %d, history starts at step %d)",
				ErrInvalidArgument, i, r.start-w.mu.base, r.name, w.opts.HistoryLength, ws-w.mu.base)
		}
		colEnd := w.mu.pos
		if col.inStep {
			colEnd++
		}
		if r.end > colEnd {
			return nil, fmt.Errorf("%w: writer: item column %d: column %q has no value at step %d yet", ErrInvalidArgument, i, r.name, colEnd-w.mu.base)
		}
		if err := w.coverLocked(col, r.start, r.end, nil); err != nil {
			return nil, fmt.Errorf("%w: writer: item column %d: %w", ErrInvalidArgument, i, err)
		}
		cols[i] = col
	}
	for i, r := range refs {
		if o := cols[i].open; o != nil && r.end > o.start {
			if err := w.finalizeLocked(cols[i]); err != nil {
				w.failLocked(err)
				return nil, w.mu.err
			}
		}
	}
	it := &witem{ins: insertItem{table: tableName, key: w.newKeyLocked(), priority: priority}}
	it.chunks = it.chunkBuf[:0]
	if len(refs) <= len(it.trajBuf) {
		it.ins.trajectory = it.trajBuf[:len(refs)]
	} else {
		it.ins.trajectory = make([]table.TrajectoryColumn, len(refs))
	}
	size := 0
	for i, r := range refs {
		var sl []table.ChunkSlice
		if i == 0 {
			sl = it.sliceBuf[:0]
		}
		_ = w.coverLocked(cols[i], r.start, r.end, func(c *wchunk, off, n int) {
			sl = append(sl, table.ChunkSlice{ChunkKey: c.key, Offset: int32(off), Length: int32(n)})
			for _, have := range it.chunks {
				if have == c {
					return
				}
			}
			it.chunks = append(it.chunks, c)
			size += len(c.data.Data)
		})
		it.ins.trajectory[i] = table.TrajectoryColumn{Slices: sl, Squeeze: r.squeeze}
	}
	if size > w.maxItemBytes {
		return nil, fmt.Errorf("%w: writer: item needs %d bytes of chunks, more than fits in a message (%d bytes)", ErrInvalidArgument, size, w.maxItemBytes)
	}
	return it, nil
}

// coverLocked walks the chunks of col (encoded, then open) that cover
// positions [start, end), calling fn, if not nil, with each chunk and the
// offset and length of the part used. It fails if a step has no value.
func (w *Writer) coverLocked(col *wcolumn, start, end int64, fn func(c *wchunk, off, n int)) error {
	cur := start
	// visit uses c if it covers cur; it returns false when done or stuck.
	visit := func(c *wchunk) bool {
		if c.end() <= cur {
			return true // entirely before cur
		}
		if c.start > cur {
			return false // cur has no value
		}
		n := min(end, c.end()) - cur
		if fn != nil {
			fn(c, int(cur-c.start), int(n))
		}
		cur += n
		return cur < end
	}
	// The first encoded chunk that ends after start.
	i, _ := slices.BinarySearchFunc(col.chunks, start, func(c *wchunk, p int64) int {
		if c.end() <= p {
			return -1
		}
		return 1
	})
	more := true
	for ; more && i < len(col.chunks); i++ {
		more = visit(col.chunks[i])
	}
	if more && col.open != nil {
		visit(col.open)
	}
	if cur < end {
		return fmt.Errorf("column %q has no value at step %d", col.name, cur-w.mu.base)
	}
	return nil
}

// InFlight returns the number of items created and not yet acknowledged.
func (w *Writer) InFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.mu.pending)
}

// Flush waits until the server has acknowledged every item created so far.
// If ctx ends first it returns an error matching ctx.Err(); the items stay
// in flight and are still delivered. It returns the sticky error if the
// writer failed, and ErrClosed after Close.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if err := w.usableLocked(); err != nil {
			return err
		}
		if len(w.mu.pending) == 0 {
			return nil
		}
		ch := w.mu.changed
		w.mu.Unlock()
		select {
		case <-ch:
			w.mu.Lock()
		case <-ctx.Done():
			w.mu.Lock()
			return fmt.Errorf("replay: writer flush: %d items not acknowledged: %w", len(w.mu.pending), ctx.Err())
		}
	}
}

// Close stops the writer's goroutines and ends its stream. It does not
// wait for items in flight: call Flush (or EndEpisode) first. It returns
// the sticky error if the writer failed, an error if items were still
// unacknowledged (they may or may not have been inserted), and nil
// otherwise. Calls after the first return nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return nil
	}
	w.mu.closed = true
	w.broadcastLocked()
	w.mu.Unlock()
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.err != nil {
		return w.mu.err
	}
	if n := len(w.mu.pending); n > 0 {
		return fmt.Errorf("replay: writer closed with %d unacknowledged items (call Flush before Close)", n)
	}
	return nil
}

// --- streaming ----------------------------------------------------------------

// run owns the insert stream: it opens one when there are items to send,
// and reopens it with backoff while the server is unavailable.
func (w *Writer) run() {
	defer close(w.done)
	backoff := writerMinBackoff
	for {
		if !w.waitForItems() {
			return
		}
		start := time.Now()
		progress, err := w.session()
		if w.ctx.Err() != nil {
			return
		}
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, errStreamEnded) {
			w.mu.Lock()
			w.failLocked(err)
			w.mu.Unlock()
			return
		}
		if progress || time.Since(start) > writerMaxBackoff {
			backoff = writerMinBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, writerMaxBackoff)
		// gRPC's own reconnect backoff grows to minutes; ours decides.
		w.c.conn.ResetConnectBackoff()
	}
}

// waitForItems waits until an item is unacknowledged; false if the writer
// closed.
func (w *Writer) waitForItems() bool {
	for {
		w.mu.Lock()
		n := len(w.mu.queue)
		w.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-w.kick:
		case <-w.ctx.Done():
			return false
		}
	}
}

// session runs one insert stream until it fails. progress reports whether
// the server acknowledged anything on it.
func (w *Writer) session() (progress bool, err error) {
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	// Not WaitForReady: while the server is down the call fails fast with
	// Unavailable and run's backoff paces the retries.
	st, err := w.c.rpc.Insert(ctx)
	if err != nil {
		return false, fromStatus(err)
	}
	// Commit the stream's first attempt so that gRPC never retries it
	// transparently: a retried attempt replays only the requests whose Send
	// succeeded, and Send can report io.EOF for the failed attempt while Recv
	// carries on with the new one, leaving the sender waiting for a Recv
	// error that never comes. The writer does its own resends.
	_ = st.Context()
	w.mu.Lock()
	w.resetStreamLocked()
	w.mu.Unlock()

	var acked atomic.Bool
	recvDone := make(chan error, 1)
	go func() { recvDone <- w.receive(st, &acked) }()
	recvFinished, err := w.send(ctx, st, recvDone)
	cancel()
	if !recvFinished {
		<-recvDone
	}
	return acked.Load(), err
}

// resetStreamLocked prepares a new stream: the server holds none of our
// chunks and every unacknowledged item must be (re)sent.
func (w *Writer) resetStreamLocked() {
	w.mu.streams++ // chunks sent on older streams are no longer on the server
	clear(w.mu.releasable)
	w.mu.releasable = w.mu.releasable[:0]
	for _, it := range w.mu.queue[:w.mu.sent] {
		if it.acked {
			continue
		}
		for _, c := range it.chunks {
			c.unsent++
		}
	}
	w.mu.sent = 0
	w.mu.unackedMsgs = 0
}

// send sends requests until the stream fails. recvFinished reports whether
// the error came from (and so ended) the receiver.
func (w *Writer) send(ctx context.Context, st wire.ReplayService_InsertClient, recvDone <-chan error) (recvFinished bool, err error) {
	for {
		w.mu.Lock()
		var req outgoingRequest
		if w.mu.unackedMsgs < maxUnackedMsgs {
			req = w.nextRequestLocked()
			if len(req.items) > 0 {
				w.mu.unackedMsgs++
			}
		}
		w.mu.Unlock()
		if len(req.items) == 0 {
			select {
			case <-w.kick:
				continue
			case err := <-recvDone:
				return true, err
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
		if err := st.SendMsg(buildInsertMessage(req.chunks, req.bufs, req.items, req.release, minOutOfLine)); err != nil {
			if errors.Is(err, io.EOF) {
				// The stream ended; its status comes from Recv.
				return true, <-recvDone
			}
			return false, fromStatus(err)
		}
	}
}

// outgoingRequest is what the next insert request carries: chunks with
// their recycled buffers (bufs is nil if no chunk has one, else an entry
// per chunk, nil for those without), items and the keys of chunks to
// release.
type outgoingRequest struct {
	chunks  []*table.Chunk
	bufs    []*chunkBuf
	items   []insertItem
	release []uint64
}

// nextRequestLocked takes the next queued items (up to ItemsPerMessage and
// about batchBytes of new chunk data), the chunks they need that the server
// lacks, and the release list; it updates the mirror of the server's pending
// chunks as the server will once it has handled the request.
func (w *Writer) nextRequestLocked() (req outgoingRequest) {
	size := 0
	for w.mu.sent < len(w.mu.queue) && len(req.items) < w.opts.ItemsPerMessage {
		it := w.mu.queue[w.mu.sent]
		if it.acked {
			w.mu.sent++
			continue
		}
		need := 0
		for _, c := range it.chunks {
			if !w.onServerLocked(c) {
				need += len(c.data.Data)
			}
		}
		if len(req.items) > 0 && size+need > w.batchBytes {
			break
		}
		for _, c := range it.chunks {
			if !w.onServerLocked(c) {
				c.stream = w.mu.streams
				req.chunks = append(req.chunks, c.data)
				if c.buf != nil && req.bufs == nil {
					// Small chunks have no buffer: most requests need no list.
					req.bufs = make([]*chunkBuf, len(req.chunks)-1, cap(req.chunks))
				}
				if req.bufs != nil {
					req.bufs = append(req.bufs, c.buf)
				}
				if c.buf != nil {
					c.buf.hold() // released by gRPC once it has written the message
				}
			}
			c.unsent--
			w.checkReleasableLocked(c)
		}
		size += need
		req.items = append(req.items, it.ins)
		w.mu.sent++
	}
	if len(req.items) == 0 {
		return outgoingRequest{}
	}
	for _, c := range w.mu.releasable {
		req.release = append(req.release, c.key)
		c.stream = 0
	}
	clear(w.mu.releasable)
	w.mu.releasable = w.mu.releasable[:0]
	return req
}

// receive reads acknowledgements until the stream fails.
func (w *Writer) receive(st wire.ReplayService_InsertClient, acked *atomic.Bool) error {
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errStreamEnded
			}
			return fromStatus(err)
		}
		keys, err := parseInsertResponse(messageBytes(resp))
		if err != nil {
			return fmt.Errorf("insert response: %w", err)
		}
		if len(keys) > 0 {
			acked.Store(true)
		}
		w.mu.Lock()
		w.ackLocked(keys)
		w.mu.unackedMsgs--
		w.mu.Unlock()
		w.wakeSender()
	}
}

// ackLocked marks items acknowledged and drops them from the queue.
func (w *Writer) ackLocked(keys []uint64) {
	for _, k := range keys {
		if it := w.mu.pending[k]; it != nil {
			it.acked = true
			delete(w.mu.pending, k)
			for _, c := range it.chunks {
				c.users--
				w.recycleLocked(c)
			}
		}
	}
	n := 0
	for n < len(w.mu.queue) && w.mu.queue[n].acked {
		n++
	}
	clear(w.mu.queue[:n])
	w.mu.queue = w.mu.queue[n:]
	w.mu.sent = max(0, w.mu.sent-n)
	if len(w.mu.queue) == 0 {
		w.mu.queue = nil // let the backing array go
	}
	w.broadcastLocked()
}
