package replay

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/recall-rl/recall/internal/chunkcodec"
)

// The writer's encoded chunks need memory for as long as they may be sent
// again, and fresh memory is expensive: every new page is faulted in and
// zeroed by the kernel, which for large items costs more than encoding and
// sending them. Small chunks are therefore carved from shared slabs, and
// large ones are encoded into buffers that are recycled once nothing can
// read them any more.

// chunkSlabSize is the size of the blocks that small encoded chunks are
// carved from: one allocation serves many chunks, and the garbage collector
// frees a block once none of its chunks is referenced (chunks die roughly
// in the order they were made, so few blocks linger).
const chunkSlabSize = 64 << 10

// chunkBuf is a recycled buffer holding one large encoded chunk. It goes
// back to chunkBufPool when its holds reach zero: one for the writer, held
// until no unacknowledged item uses the chunk and it has left the history
// window, and one per insert message carrying it, held until gRPC has
// written the message (gRPC calls Put). A hold that is never released (a
// message gRPC dropped on an error path) only means the buffer is left to
// the garbage collector instead of being reused.
type chunkBuf struct {
	data  []byte // the whole buffer
	holds atomic.Int32
}

var chunkBufPool sync.Pool // of *chunkBuf

// getChunkBuf returns a buffer of at least n bytes holding one hold.
func getChunkBuf(n int) *chunkBuf {
	b, _ := chunkBufPool.Get().(*chunkBuf)
	// A pooled buffer much larger than needed would pin memory for a
	// small chunk; drop it and make a fitting one.
	if b == nil || cap(b.data) < n || cap(b.data) > 2*n {
		b = &chunkBuf{data: make([]byte, n)}
	}
	b.holds.Store(1)
	return b
}

// hold adds a hold.
func (b *chunkBuf) hold() { b.holds.Add(1) }

// release drops a hold, recycling the buffer after the last.
func (b *chunkBuf) release() {
	if b.holds.Add(-1) == 0 {
		chunkBufPool.Put(b)
	}
}

// Get is never called: the buffer is handed to gRPC filled. It satisfies
// mem.BufferPool.
func (b *chunkBuf) Get(n int) *[]byte {
	s := make([]byte, n)
	return &s
}

// Put is called by gRPC once it has written a message carrying the chunk.
func (b *chunkBuf) Put(*[]byte) { b.release() }

// encodeLocked encodes one column's chunk. Small chunks are encoded in
// place at the end of the current slab; large ones into a recycled buffer,
// returned with the writer's hold on it (nil if the chunk has its own
// allocation).
func (w *Writer) encodeLocked(col chunkcodec.Column) ([]byte, *chunkBuf, error) {
	cols := []chunkcodec.Column{col}
	need := 256 // more than the header and checksum take
	for _, t := range col.Steps {
		need += len(t.Data)
	}
	if need > chunkSlabSize/8 {
		b := getChunkBuf(need)
		data, err := chunkcodec.AppendEncode(b.data[:0], cols, w.codec)
		if err != nil || unsafe.SliceData(data) != unsafe.SliceData(b.data) {
			// On error, or if the encoding outgrew the buffer (and has an
			// allocation of its own), the buffer is unused.
			b.release()
			return data[:len(data):len(data)], nil, err
		}
		return data[:len(data):len(data)], b, nil
	}
	slab := w.mu.slab
	if cap(slab)-len(slab) < need {
		slab = make([]byte, 0, chunkSlabSize)
	}
	free := slab[len(slab):len(slab):cap(slab)]
	data, err := chunkcodec.AppendEncode(free, cols, w.codec)
	if err != nil {
		return nil, nil, err
	}
	if unsafe.SliceData(data) == unsafe.SliceData(free) {
		slab = slab[:len(slab)+len(data)]
	} // else the encoding outgrew the estimate and has its own allocation
	w.mu.slab = slab
	return data[:len(data):len(data)], nil, nil
}

// recycleLocked gives up the writer's hold on c's buffer once c can no
// longer be sent: it has left the history window (no new item can use it)
// and every item using it is acknowledged.
func (w *Writer) recycleLocked(c *wchunk) {
	if c.buf != nil && !c.inWindow && c.users == 0 {
		b := c.buf
		c.buf = nil
		b.release()
	}
}
