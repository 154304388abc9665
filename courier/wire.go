package courier

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// The gRPC service. Both methods are unary and carry raw bytes laid out as
// doc.go describes.
const (
	serviceName       = ServiceName
	callMethod        = "/" + serviceName + "/Call"
	listMethodsMethod = "/" + serviceName + "/ListMethods"
)

// outMsg is an encoded outgoing message. Large ones live in a buffer from
// gRPC's buffer pool, which gRPC returns to the pool once it has sent them,
// so steady traffic does not allocate message buffers.
type outMsg struct{ buf *[]byte }

// newOutMsg returns an empty message with capacity n.
func newOutMsg(n int) outMsg {
	if mem.IsBelowBufferPoolingThreshold(n) {
		b := make([]byte, 0, n)
		return outMsg{&b}
	}
	b := mem.DefaultBufferPool().Get(n)
	*b = (*b)[:0]
	return outMsg{b}
}

// rawCodec moves []byte messages unchanged and hands anything else (the
// health service's protobuf messages) to the protobuf codec.
type rawCodec struct{}

var protoCodec = encoding.GetCodecV2(proto.Name)

func (rawCodec) Name() string { return "courier" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case outMsg:
		return mem.BufferSlice{mem.NewBuffer(m.buf, mem.DefaultBufferPool())}, nil
	case []byte:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case *[]byte:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return protoCodec.Marshal(v)
}

// Unmarshal copies the message out of gRPC's pooled buffers, so decoded
// values may alias it safely.
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if p, ok := v.(*[]byte); ok {
		*p = data.Materialize()
		return nil
	}
	return protoCodec.Unmarshal(data, v)
}

// handler is the interface the service registers; *Server implements it.
type handler interface {
	handleCall(ctx context.Context, req []byte) (outMsg, error)
	handleListMethods(ctx context.Context, req []byte) (outMsg, error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*handler)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Call", Handler: unaryHandler(callMethod, handler.handleCall)},
		{MethodName: "ListMethods", Handler: unaryHandler(listMethodsMethod, handler.handleListMethods)},
	},
	Metadata: "courier (raw bytes, see package doc)",
}

func unaryHandler(full string, fn func(handler, context.Context, []byte) (outMsg, error)) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		var req []byte
		if err := dec(&req); err != nil {
			return nil, err
		}
		h := srv.(handler)
		if interceptor == nil {
			resp, err := fn(h, ctx, req)
			if err != nil {
				return nil, err
			}
			return resp, nil
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: full}
		return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			resp, err := fn(h, ctx, req.([]byte))
			if err != nil {
				return nil, err
			}
			return resp, nil
		})
	}
}

// appendString appends a uvarint length and s.
func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// rawString reads what appendString wrote, without copying.
func (d *decoder) rawString() ([]byte, error) {
	n, err := d.count(1)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

// encodeRequest builds a Call request: method name, argument signature,
// argument values.
func encodeRequest(method string, args []any) (outMsg, error) {
	var stack [8]*typeCodec
	codecs := stack[:0]
	sigLen, valuesLen := 0, 0
	for i, a := range args {
		var c *typeCodec
		if a == nil {
			sigLen += len(nilDesc)
		} else {
			var err error
			if c, err = codecFor(reflect.TypeOf(a)); err != nil {
				return outMsg{}, argError(method, i, err)
			}
			sigLen += len(c.desc)
			valuesLen += c.sizeOf(reflect.ValueOf(a))
		}
		if i > 0 {
			sigLen++
		}
		codecs = append(codecs, c)
	}
	msg := newOutMsg(uvarintLen(uint64(len(method))) + len(method) + uvarintLen(uint64(sigLen)) + sigLen + valuesLen)
	buf := appendString(*msg.buf, method)
	buf = binary.AppendUvarint(buf, uint64(sigLen))
	for i, c := range codecs {
		if i > 0 {
			buf = append(buf, ',')
		}
		if c == nil {
			buf = append(buf, nilDesc...)
		} else {
			buf = append(buf, c.desc...)
		}
	}
	e := encoder{buf: buf}
	for i, c := range codecs {
		if c == nil {
			continue
		}
		c.enc(&e, reflect.ValueOf(args[i]))
		if e.err != nil {
			return outMsg{}, argError(method, i, e.err)
		}
	}
	*msg.buf = e.buf
	return msg, nil
}

// encodeResponse builds a response: result descriptor ("" for none) and
// value.
func encodeResponse(c *typeCodec, v reflect.Value) (outMsg, error) {
	if c == nil {
		return outMsg{&noResult}, nil
	}
	msg := newOutMsg(uvarintLen(uint64(len(c.desc))) + len(c.desc) + c.sizeOf(v))
	buf, err := encodeValue(appendString(*msg.buf, c.desc), c, v)
	*msg.buf = buf
	return msg, err
}

// noResult is the response of a method without a result: an empty
// descriptor. It is never written to.
var noResult = []byte{0}

// splitSig splits an argument signature into descriptors. Descriptors
// contain no commas, so a plain split is exact.
func splitSig(sig string) []string {
	if sig == "" {
		return nil
	}
	return strings.Split(sig, ",")
}

func argError(method string, i int, err error) error {
	return fmt.Errorf("courier: %s: argument %d: %w", method, i+1, err)
}
