package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"google.golang.org/grpc"
)

// The raw bench service moves opaque messages of a chosen size over plain
// gRPC streams on the server's own port, with the same codec and transport
// settings as the replay service but no decoding, tables or copies. It is
// the ceiling the insert and sample paths are measured against
// (`replayctl bench --mode raw`).

const rawBenchService = "recall.wire.RawBench"

var rawBenchDesc = grpc.ServiceDesc{
	ServiceName: rawBenchService,
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Sink", Handler: rawSink, ServerStreams: true, ClientStreams: true},
		{StreamName: "Source", Handler: rawSource, ServerStreams: true, ClientStreams: true},
	},
}

// rawSink acknowledges every received message with its 8-byte sequence
// number, like an insert stream acknowledging keys.
func rawSink(_ any, ss grpc.ServerStream) error {
	for n := uint64(1); ; n++ {
		var m rawMessage
		if err := ss.RecvMsg(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		// gRPC may still read a sent message after SendMsg returns, so
		// every message gets its own buffer.
		ack := make([]byte, 8)
		binary.LittleEndian.PutUint64(ack, n)
		if err := ss.SendMsg(rawMessage(ack)); err != nil {
			return err
		}
	}
}

// rawSource answers each request [size uint32][count uint32] with count
// messages of size random bytes.
func rawSource(_ any, ss grpc.ServerStream) error {
	var payload []byte
	for {
		var m rawMessage
		if err := ss.RecvMsg(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(m) != 8 {
			return fmt.Errorf("%w: raw source request must be 8 bytes", ErrInvalidArgument)
		}
		size := int(binary.LittleEndian.Uint32(m[:4]))
		count := int(binary.LittleEndian.Uint32(m[4:]))
		if size > DefaultMaxMessageBytes {
			return fmt.Errorf("%w: raw message size %d too large", ErrInvalidArgument, size)
		}
		if len(payload) != size {
			payload = make([]byte, size)
			for i := range payload {
				payload[i] = byte(rand.Uint32())
			}
		}
		for i := 0; i < count; i++ {
			// Each message is sent from its own slice, as a sample response
			// would be; gRPC may still hold the previous one.
			msg := make([]byte, size)
			copy(msg, payload)
			if err := ss.SendMsg(rawMessage(msg)); err != nil {
				return err
			}
		}
	}
}

// BenchRawInsert sends count messages of size bytes over a raw stream the
// server discards, keeping at most window messages unacknowledged. It is
// the ceiling for insert throughput with messages of that size.
func (c *Client) BenchRawInsert(ctx context.Context, size, count, window int) error {
	if size < 0 || count < 0 || window < 1 {
		return fmt.Errorf("%w: raw insert size %d count %d window %d", ErrInvalidArgument, size, count, window)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.conn.NewStream(ctx, &rawBenchDesc.Streams[0], "/"+rawBenchService+"/Sink")
	if err != nil {
		return fromStatus(err)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(rand.Uint32())
	}
	acked := make(chan error, 1)
	credits := make(chan struct{}, window)
	for i := 0; i < window; i++ {
		credits <- struct{}{}
	}
	go func() {
		for i := 0; i < count; i++ {
			var ack rawMessage
			if err := st.RecvMsg(&ack); err != nil {
				acked <- err
				return
			}
			credits <- struct{}{}
		}
		acked <- nil
	}()
	for i := 0; i < count; i++ {
		select {
		case <-credits:
		case err := <-acked:
			return fromStatus(err)
		}
		msg := make([]byte, size) // a writer builds a fresh message each time
		copy(msg, payload)
		if err := st.SendMsg(rawMessage(msg)); err != nil {
			return fromStatus(err)
		}
	}
	if err := <-acked; err != nil {
		return fromStatus(err)
	}
	return st.CloseSend()
}

// BenchRawSample asks the server for count messages of size bytes over a
// raw stream, in requests of at most batch messages, and reads them all.
func (c *Client) BenchRawSample(ctx context.Context, size, count, batch int) error {
	if size < 0 || count < 0 || batch < 1 {
		return fmt.Errorf("%w: raw sample size %d count %d batch %d", ErrInvalidArgument, size, count, batch)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.conn.NewStream(ctx, &rawBenchDesc.Streams[1], "/"+rawBenchService+"/Source")
	if err != nil {
		return fromStatus(err)
	}
	for done := 0; done < count; {
		n := min(batch, count-done)
		req := make([]byte, 8)
		binary.LittleEndian.PutUint32(req[:4], uint32(size))
		binary.LittleEndian.PutUint32(req[4:], uint32(n))
		if err := st.SendMsg(rawMessage(req)); err != nil {
			return fromStatus(err)
		}
		for i := 0; i < n; i++ {
			var m rawMessage
			if err := st.RecvMsg(&m); err != nil {
				return fromStatus(err)
			}
		}
		done += n
	}
	return st.CloseSend()
}
