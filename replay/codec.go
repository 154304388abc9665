package replay

import (
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
	"google.golang.org/grpc/encoding"
)

// codecName is the gRPC content-subtype of replay messages.
const codecName = "flatbuffers"

// codec is the FlatBuffers gRPC codec. It marshals finished builders like
// flatbuffers.FlatbuffersCodec, but unmarshals leniently: a buffer too short
// to hold a root offset is still handed to the message, because gRPC turns
// every codec error into codes.Internal, while a malformed request is the
// client's fault. The parse functions in convert.go check the buffer and
// answer InvalidArgument.
type codec struct{}

func (codec) Name() string { return codecName }

func (codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *flatbuffers.Builder:
		return m.FinishedBytes(), nil
	case rawMessage:
		return m, nil
	}
	return nil, fmt.Errorf("replay: codec cannot marshal %T", v)
}

// rawMessage is an already encoded message, sent as is (benchmarks and
// tests use it to send arbitrary bytes).
type rawMessage []byte

func (codec) Unmarshal(data []byte, v any) error {
	if raw, ok := v.(*rawMessage); ok {
		*raw = data
		return nil
	}
	m, ok := v.(interface {
		Init(buf []byte, i flatbuffers.UOffsetT)
	})
	if !ok {
		return fmt.Errorf("replay: codec cannot unmarshal into %T", v)
	}
	// The offset is re-read (and checked) by the parse functions; pass 0
	// so that accessors used before parsing cannot index past the buffer.
	m.Init(data, 0)
	return nil
}

func init() { encoding.RegisterCodec(codec{}) }

// messageBytes returns the buffer a received message was decoded from.
func messageBytes(m interface{ Table() flatbuffers.Table }) []byte { return m.Table().Bytes }
