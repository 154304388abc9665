package replay

import (
	"bytes"
	"fmt"
	"sync"

	flatbuffers "github.com/google/flatbuffers/go"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// codecName is the gRPC content-subtype of replay messages.
const codecName = "flatbuffers"

// codec is the FlatBuffers gRPC codec (a gRPC CodecV2).
//
// Marshal sends a finished builder's bytes without copying them. A message
// built in a pooled builder (see getBuilder) is handed to gRPC with a
// release hook, so the builder goes back to the pool once gRPC has written
// the bytes: the steady state allocates no message buffers.
//
// Unmarshal copies the received frames into one buffer (FlatBuffers needs
// contiguous bytes, and chunk payloads outlive the call) and hands it to the
// message leniently: a buffer too short to hold a root offset is passed on
// anyway, because gRPC turns every codec error into codes.Internal while a
// malformed request is the client's fault. The parse functions in
// convert.go check the buffer and answer InvalidArgument.
type codec struct{}

func (codec) Name() string { return codecName }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *pooledBuilder:
		data := m.b.FinishedBytes()
		return mem.BufferSlice{mem.NewBuffer(&data, m)}, nil
	case *flatbuffers.Builder:
		return mem.BufferSlice{mem.SliceBuffer(m.FinishedBytes())}, nil
	case rawMessage:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case *outOfLineMessage:
		data := m.fb.b.FinishedBytes()
		out := make(mem.BufferSlice, 1, 1+len(m.payloads))
		out[0] = mem.NewBuffer(&data, m.fb)
		for i := range m.payloads {
			if i < len(m.bufs) && m.bufs[i] != nil {
				out = append(out, mem.NewBuffer(&m.payloads[i], m.bufs[i]))
			} else {
				// A pointer: no allocation per payload.
				out = append(out, (*mem.SliceBuffer)(&m.payloads[i]))
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("replay: codec cannot marshal %T", v)
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := materialize(data)
	if raw, ok := v.(*rawMessage); ok {
		*raw = buf
		return nil
	}
	m, ok := v.(interface {
		Init(buf []byte, i flatbuffers.UOffsetT)
	})
	if !ok {
		return fmt.Errorf("replay: codec cannot unmarshal into %T", v)
	}
	// The root offset is re-read (and checked) by the parse functions; pass
	// 0 so that accessors used before parsing cannot index past the buffer.
	m.Init(buf, 0)
	return nil
}

func init() { encoding.RegisterCodecV2(codec{}) }

// materialize is data.Materialize without zeroing the new buffer first
// (bytes.Join allocates it uninitialised and copies over all of it): for
// large messages the zeroing costs as much as the copy.
func materialize(data mem.BufferSlice) []byte {
	if data.Len() == 0 {
		return nil // as Materialize
	}
	var stack [64][]byte
	parts := stack[:0]
	for _, b := range data {
		parts = append(parts, b.ReadOnlyData())
	}
	return bytes.Join(parts, nil)
}

// rawMessage is an already encoded message, sent as is (benchmarks and
// tests use it to send arbitrary bytes).
type rawMessage []byte

// minOutOfLine is the smallest chunk payload sent out of line: gRPC
// handles each buffer of a message separately, which for small payloads
// costs more than copying them into the message.
const minOutOfLine = 4 << 10

// outOfLineMessage is a message with out-of-line chunk payloads (an insert
// request or a sample response): the FlatBuffer, then the payloads in
// order, which make up its payload region. The payloads must not change
// until gRPC has written them; chunk data never changes once encoded.
type outOfLineMessage struct {
	fb       *pooledBuilder
	payloads [][]byte
	bufs     []*chunkBuf // per payload: its recycled buffer, or nil
}

// size returns the message's size in bytes.
func (m *outOfLineMessage) size() int {
	n := len(m.fb.b.FinishedBytes())
	for _, p := range m.payloads {
		n += len(p)
	}
	return n
}

// messageBytes returns the buffer a received message was decoded from.
func messageBytes(m interface{ Table() flatbuffers.Table }) []byte { return m.Table().Bytes }

// pooledBuilder is a builder from builderPool, sent through the codec. gRPC
// calls Put (as the buffer's pool) when it no longer needs the bytes, which
// returns the builder to builderPool.
type pooledBuilder struct {
	b *flatbuffers.Builder
}

var builderPool = sync.Pool{New: func() any { return &pooledBuilder{b: flatbuffers.NewBuilder(4096)} }}

// maxPooledBuilder is the largest builder buffer kept for reuse.
const maxPooledBuilder = 8 << 20

// getBuilder returns a reset builder from the pool. Send the message as the
// returned *pooledBuilder (SendMsg) so the codec can recycle it; a builder
// that is never sent may simply be dropped.
func getBuilder() *pooledBuilder {
	p := builderPool.Get().(*pooledBuilder)
	p.b.Reset()
	return p
}

// Get is never called: the codec builds buffers itself. It satisfies
// mem.BufferPool.
func (p *pooledBuilder) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

// Put returns the builder to the pool once gRPC is done with its bytes.
func (p *pooledBuilder) Put(*[]byte) {
	if cap(p.b.Bytes) <= maxPooledBuilder {
		builderPool.Put(p)
	}
}
