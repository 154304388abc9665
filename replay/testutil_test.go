package replay

import (
	"io"
	"log/slog"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// protoCodec is a protobuf codec, for calling the health service over a
// connection whose default codec is FlatBuffers.
type protoCodec struct{}

func (protoCodec) Marshal(v any) ([]byte, error)   { return proto.Marshal(v.(proto.Message)) }
func (protoCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (protoCodec) Name() string                    { return "proto" }
