package replay

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/internal/tensor"
	"github.com/recall-rl/recall/ratelimit"
	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/sampler"
	"github.com/recall-rl/recall/table"
)

// testServer is a real server on a loopback port.
type testServer struct {
	srv  *Server
	addr string
	done chan error
}

// startServer serves opts on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, opts ServerOptions) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, lis, opts)
}

func serveOn(t testing.TB, lis net.Listener, opts ServerOptions) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, addr: lis.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func dial(t testing.TB, addr string, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func oneTable(to table.Options) ServerOptions {
	if to.Name == "" {
		to.Name = "t"
	}
	return ServerOptions{Tables: []table.Options{to}}
}

// encodeChunk encodes steps of one column into a wire chunk.
func encodeChunk(t testing.TB, key, episode uint64, name string, steps ...tensor.Tensor) *table.Chunk {
	t.Helper()
	data, err := chunkcodec.Encode([]chunkcodec.Column{{Name: name, Steps: steps}}, chunkcodec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &table.Chunk{Key: key, EpisodeID: episode, Length: int32(len(steps)), Data: data,
		Columns: []table.ColumnSpec{{Name: name, DType: steps[0].DType, Shape: steps[0].Shape}}}
}

// whole returns a trajectory of one column covering all of chunk c.
func whole(c *table.Chunk) []table.TrajectoryColumn {
	return []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: c.Key, Length: c.Length}}}}
}

// rawInsert sends one request on a fresh insert stream, half-closes and
// returns the acked keys and the stream's final error.
func rawInsert(ctx context.Context, c *Client, chunks []*table.Chunk, items []insertItem, release []uint64) ([]uint64, error) {
	st, err := c.rpc.Insert(ctx)
	if err != nil {
		return nil, fromStatus(err)
	}
	if err := st.Send(buildInsertRequest(chunks, items, release)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fromStatus(err)
	}
	if err := st.CloseSend(); err != nil {
		return nil, fromStatus(err)
	}
	var keys []uint64
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return keys, fromStatus(err)
		}
		k, perr := parseInsertResponse(messageBytes(resp))
		if perr != nil {
			return keys, perr
		}
		keys = append(keys, k...)
	}
}

func TestRoundTripEveryDType(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{Sampler: sampler.FIFOSpec(), MaxTimesSampled: 1}))
	c := dial(t, ts.addr)
	ctx := context.Background()

	steps := map[tensor.DType][]tensor.Tensor{
		tensor.Uint8:   {tensor.MustFromSlice([]uint8{0, 255, 7}), tensor.MustFromSlice([]uint8{1, 2, 3})},
		tensor.Int8:    {tensor.MustFromSlice([]int8{-128, 127, 0}), tensor.MustFromSlice([]int8{1, -1, 5})},
		tensor.Int16:   {tensor.MustFromSlice([]int16{-32768, 32767, 3}), tensor.MustFromSlice([]int16{9, 8, 7})},
		tensor.Int32:   {tensor.MustFromSlice([]int32{math.MinInt32, 5, 6}), tensor.MustFromSlice([]int32{1, 2, math.MaxInt32})},
		tensor.Int64:   {tensor.MustFromSlice([]int64{math.MinInt64, 0, 1}), tensor.MustFromSlice([]int64{2, 3, math.MaxInt64})},
		tensor.Uint16:  {tensor.MustFromSlice([]uint16{65535, 0, 1}), tensor.MustFromSlice([]uint16{4, 5, 6})},
		tensor.Uint32:  {tensor.MustFromSlice([]uint32{math.MaxUint32, 0, 1}), tensor.MustFromSlice([]uint32{4, 5, 6})},
		tensor.Uint64:  {tensor.MustFromSlice([]uint64{math.MaxUint64, 0, 1}), tensor.MustFromSlice([]uint64{4, 5, 6})},
		tensor.Float32: {tensor.MustFromSlice([]float32{1.5, float32(math.Inf(-1)), -0}), tensor.MustFromSlice([]float32{3, 4, 5})},
		tensor.Float64: {tensor.MustFromSlice([]float64{math.Pi, math.NaN(), 1e300}), tensor.MustFromSlice([]float64{3, 4, 5})},
		tensor.Bool:    {tensor.MustFromSlice([]bool{true, false, true}), tensor.MustFromSlice([]bool{false, false, true})},
	}
	var chunks []*table.Chunk
	var items []insertItem
	key := uint64(100)
	order := []tensor.DType{}
	for dt := tensor.Uint8; dt <= tensor.Bool; dt++ {
		ch := encodeChunk(t, key, 1, "x", steps[dt]...)
		chunks = append(chunks, ch)
		items = append(items, insertItem{table: "t", key: key, priority: 1, trajectory: whole(ch)})
		order = append(order, dt)
		key++
	}
	acked, err := rawInsert(ctx, c, chunks, items, nil)
	if err != nil || len(acked) != len(items) {
		t.Fatalf("insert: acked %v, err %v", acked, err)
	}
	s, err := c.NewSampler("t", WithMaxSamples(int64(len(items))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, dt := range order {
		got, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		if got.Info.Key != uint64(100+i) || got.Names[0] != "x" {
			t.Fatalf("%s: info %+v names %v", dt, got.Info, got.Names)
		}
		want := tensor.Tensor{DType: dt, Shape: []int{2, 3}, Data: append(append([]byte{}, steps[dt][0].Data...), steps[dt][1].Data...)}
		if !got.Columns[0].Equal(want) {
			t.Fatalf("%s: got %+v want %+v", dt, got.Columns[0], want)
		}
	}
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after max samples: %v", err)
	}
	waitUntil(t, func() bool { return ts.srv.Chunks().Len() == 0 })
}

func TestSliceSqueezeAndBatch(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{Sampler: sampler.FIFOSpec(), MaxTimesSampled: 1}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	var stepsA, stepsB []tensor.Tensor
	for i := 0; i < 4; i++ {
		stepsA = append(stepsA, tensor.MustFromSlice([]int32{int32(i), int32(10 * i)}))
		stepsB = append(stepsB, tensor.MustFromSlice([]int32{int32(100 + i), int32(1000 + i)}))
	}
	a := encodeChunk(t, 1, 9, "obs", stepsA...)
	b := encodeChunk(t, 2, 9, "obs", stepsB...)
	// Item 1: steps 2..5 across the chunk boundary; item 2: step 1 squeezed.
	items := []insertItem{
		{table: "t", key: 10, priority: 1, trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 1, Offset: 2, Length: 2}, {ChunkKey: 2, Offset: 0, Length: 2}}}}},
		{table: "t", key: 11, priority: 1, trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 1, Offset: 1, Length: 1}}, Squeeze: true}}},
	}
	if _, err := rawInsert(ctx, c, []*table.Chunk{a, b}, items, nil); err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSampler("t")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := tensor.ToSlice[int32](got.Columns[0])
	if want := []int32{2, 20, 3, 30, 100, 1000, 101, 1001}; !slices.Equal(vals, want) || !slices.Equal(got.Columns[0].Shape, []int{4, 2}) {
		t.Fatalf("item 10: %v shape %v", vals, got.Columns[0].Shape)
	}
	got, err = s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ = tensor.ToSlice[int32](got.Columns[0])
	if !slices.Equal(vals, []int32{1, 10}) || !slices.Equal(got.Columns[0].Shape, []int{2}) {
		t.Fatalf("item 11: %v shape %v", vals, got.Columns[0].Shape)
	}
	if col, ok := got.Column("obs"); !ok || !col.Equal(got.Columns[0]) {
		t.Fatal("Column by name")
	}
	// NextBatch stacks equal shapes.
	more := []insertItem{items[0], items[0], items[0]}
	for i := range more {
		more[i].key = uint64(20 + i)
	}
	if _, err := rawInsert(ctx, c, []*table.Chunk{a, b}, more, nil); err != nil {
		t.Fatal(err)
	}
	batch, err := s.NextBatch(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(batch.Columns[0].Shape, []int{3, 4, 2}) || len(batch.Infos) != 3 {
		t.Fatalf("batch shape %v infos %d", batch.Columns[0].Shape, len(batch.Infos))
	}
}

func TestErrorCodes(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{Sampler: sampler.PrioritizedSpec(1)}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	ch := func(key uint64) *table.Chunk { return encodeChunk(t, key, 1, "x", tensor.Scalar(float32(1))) }

	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		target error
	}{
		{"insert unknown table", func() error {
			k := ch(1)
			_, err := rawInsert(ctx, c, []*table.Chunk{k}, []insertItem{{table: "nope", key: 1, priority: 1, trajectory: whole(k)}}, nil)
			return err
		}, codes.NotFound, ErrTableNotFound},
		{"sample unknown table", func() error {
			s, err := c.NewSampler("nope")
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.Next(ctx)
			return err
		}, codes.NotFound, ErrTableNotFound},
		{"mutate unknown table", func() error { return c.MutatePriorities(ctx, "nope", nil, []uint64{1}) }, codes.NotFound, ErrTableNotFound},
		{"reset unknown table", func() error { return c.Reset(ctx, "nope") }, codes.NotFound, ErrTableNotFound},
		{"NaN priority", func() error {
			k := ch(2)
			_, err := rawInsert(ctx, c, []*table.Chunk{k}, []insertItem{{table: "t", key: 2, priority: math.NaN(), trajectory: whole(k)}}, nil)
			return err
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"negative priority", func() error {
			k := ch(3)
			_, err := rawInsert(ctx, c, []*table.Chunk{k}, []insertItem{{table: "t", key: 3, priority: -1, trajectory: whole(k)}}, nil)
			return err
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"inf priority mutate", func() error {
			return c.MutatePriorities(ctx, "t", map[uint64]float64{1: math.Inf(1)}, nil)
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"empty trajectory", func() error {
			_, err := rawInsert(ctx, c, []*table.Chunk{ch(4)}, []insertItem{{table: "t", key: 4, priority: 1}}, nil)
			return err
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"chunk never sent", func() error {
			k := ch(5)
			_, err := rawInsert(ctx, c, nil, []insertItem{{table: "t", key: 5, priority: 1, trajectory: whole(k)}}, nil)
			return err
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"slice outside chunk", func() error {
			k := ch(6)
			tr := whole(k)
			tr[0].Slices[0].Length = 5
			_, err := rawInsert(ctx, c, []*table.Chunk{k}, []insertItem{{table: "t", key: 6, priority: 1, trajectory: tr}}, nil)
			return err
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"chunk without data", func() error {
			k := ch(7)
			k.Data = nil
			_, err := rawInsert(ctx, c, []*table.Chunk{k}, nil, nil)
			return err
		}, codes.InvalidArgument, ErrInvalidArgument},
		{"limiter timeout", func() error {
			s, err := c.NewSampler("t", WithRateLimiterTimeout(30*time.Millisecond))
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.Next(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				return errors.New("timeout error does not match context.DeadlineExceeded")
			}
			return err
		}, codes.DeadlineExceeded, ErrRateLimiterTimeout},
		{"checkpoint unimplemented", func() error { _, err := c.Checkpoint(ctx); return err }, codes.Unimplemented, ErrUnimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tt.code)
			}
			if !errors.Is(err, tt.target) {
				t.Fatalf("err %v does not match %v", err, tt.target)
			}
		})
	}
	// None of the bad requests left anything behind.
	waitUntil(t, func() bool { return ts.srv.Table("t").Size() == 0 && ts.srv.Chunks().Len() == 0 })
}

func TestBadRequestChangesNothing(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	a := encodeChunk(t, 1, 1, "x", tensor.Scalar(int8(1)))
	b := encodeChunk(t, 2, 1, "x", tensor.Scalar(int8(2)))
	// The second item is bad, so the first must not be inserted either.
	_, err := rawInsert(ctx, c, []*table.Chunk{a, b}, []insertItem{
		{table: "t", key: 1, priority: 1, trajectory: whole(a)},
		{table: "t", key: 2, priority: -5, trajectory: whole(b)},
	}, nil)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v", err)
	}
	waitUntil(t, func() bool { return ts.srv.Chunks().Len() == 0 })
	if ts.srv.Table("t").Size() != 0 {
		t.Fatal("first item of a rejected request was inserted")
	}
}

func TestMalformedMessages(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	// Raw garbage through the real codec: a builder holding arbitrary bytes.
	garbage := [][]byte{nil, {1}, {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, []byte(strings.Repeat("\xde\xad\xbe\xef", 16))}
	for i, g := range garbage {
		st, err := c.rpc.Insert(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(rawMessage(g)); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		_, err = st.Recv()
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("garbage %d: %v", i, err)
		}
		var resp wire.MutatePrioritiesResponse
		if err := c.conn.Invoke(ctx, "/"+serviceName+"/MutatePriorities", rawMessage(g), &resp); status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.NotFound {
			t.Fatalf("mutate garbage %d: %v", i, err)
		}
	}
	// The server still serves.
	if _, err := c.ServerInfo(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPrefetchNeverExceedsCredit(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	var chunks []*table.Chunk
	var items []insertItem
	for k := uint64(1); k <= 200; k++ {
		ch := encodeChunk(t, k, 1, "x", tensor.Scalar(float32(k)))
		chunks = append(chunks, ch)
		items = append(items, insertItem{table: "t", key: k, priority: 1, trajectory: whole(ch)})
	}
	if _, err := rawInsert(ctx, c, chunks, items, nil); err != nil {
		t.Fatal(err)
	}
	const prefetch = 8
	s, err := c.NewSampler("t", WithPrefetch(prefetch))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sent := func() int64 { return ts.srv.Table("t").Info().Limiter.Samples }
	for taken := int64(0); taken < 50; taken++ {
		// Give the server every chance to overrun before checking.
		time.Sleep(time.Millisecond)
		if n := sent(); n > taken+prefetch {
			t.Fatalf("server sent %d samples with %d taken and prefetch %d", n, taken, prefetch)
		}
		if _, err := s.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return sent() >= 50+prefetch/2 })
	time.Sleep(20 * time.Millisecond)
	if n := sent(); n > 50+prefetch {
		t.Fatalf("idle sampler: server sent %d, limit %d", n, 50+prefetch)
	}
}

func TestClientKilledMidStreamLeavesNothing(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		c, err := Dial(ctx, ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.rpc.Insert(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Chunks arrive and are kept pending for items that never come.
		var chunks []*table.Chunk
		for k := uint64(0); k < 20; k++ {
			chunks = append(chunks, encodeChunk(t, uint64(round*100)+k, 1, "x", tensor.MustFromSlice(make([]float32, 256))))
		}
		if err := st.Send(buildInsertRequest(chunks, nil, nil)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return ts.srv.Chunks().Len() == 20 })
		c.Close() // the client dies without closing its stream
		waitUntil(t, func() bool { return ts.srv.Chunks().Len() == 0 && ts.srv.Chunks().Bytes() == 0 })
	}
	if ts.srv.Table("t").Size() != 0 {
		t.Fatal("items appeared")
	}
}

func TestReleaseChunkKeys(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	st, err := c.rpc.Insert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := encodeChunk(t, 1, 1, "x", tensor.Scalar(int64(1)), tensor.Scalar(int64(2)))
	// Item 10 uses a's first step; a stays pending for the next message.
	if err := st.Send(buildInsertRequest([]*table.Chunk{a}, []insertItem{{table: "t", key: 10, priority: 1,
		trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 1, Length: 1}}}}}}, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	// Item 11 reuses chunk 1 without resending it, then releases it (and
	// an unknown key, which is ignored).
	if err := st.Send(buildInsertRequest(nil, []insertItem{{table: "t", key: 11, priority: 1,
		trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: 1, Offset: 1, Length: 1}}}}}}, []uint64{1, 999})); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	// Now chunk 1 is gone from the stream: using it again is an error.
	if err := st.Send(buildInsertRequest(nil, []insertItem{{table: "t", key: 12, priority: 1, trajectory: whole(a)}}, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "never sent") {
		t.Fatalf("released chunk: %v", err)
	}
	if ts.srv.Table("t").Size() != 2 || ts.srv.Chunks().Len() != 1 {
		t.Fatalf("size %d chunks %d", ts.srv.Table("t").Size(), ts.srv.Chunks().Len())
	}
}

func TestUnreleasedChunksAreBounded(t *testing.T) {
	opts := oneTable(table.Options{})
	opts.MaxPendingBytes = 4096
	ts := startServer(t, opts)
	c := dial(t, ts.addr)
	var chunks []*table.Chunk
	for k := uint64(1); k <= 8; k++ {
		v := make([]float32, 256)
		for i := range v {
			v[i] = float32(k*1000+uint64(i)) / 7
		}
		chunks = append(chunks, encodeChunk(t, k, 1, "x", tensor.MustFromSlice(v)))
	}
	_, err := rawInsert(context.Background(), c, chunks, nil, nil)
	if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	waitUntil(t, func() bool { return ts.srv.Chunks().Len() == 0 })
}

func TestServerInfoMutateReset(t *testing.T) {
	sig := &table.Signature{Columns: []table.ColumnSpec{{Name: "x", DType: tensor.Float32, Shape: []int{}}}}
	ts := startServer(t, ServerOptions{Tables: []table.Options{
		{Name: "a", Sampler: sampler.PrioritizedSpec(0.6), Remover: sampler.MinHeapSpec(), MaxSize: 10, MaxTimesSampled: 3,
			RateLimiter: ratelimit.Must(ratelimit.SampleToInsertRatio(2, 1, 5)), Signature: sig},
		{Name: "b"},
	}})
	c := dial(t, ts.addr)
	ctx := context.Background()
	k := encodeChunk(t, 1, 1, "x", tensor.Scalar(float32(1)))
	if _, err := rawInsert(ctx, c, []*table.Chunk{k}, []insertItem{{table: "a", key: 1, priority: 2, trajectory: whole(k)}, {table: "b", key: 1, priority: 2, trajectory: whole(k)}}, nil); err != nil {
		t.Fatal(err)
	}
	si, err := c.ServerInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(si.Tables) != 2 || si.NumChunks != 1 || si.TablesStateID == "" || si.Version != Version {
		t.Fatalf("info %+v", si)
	}
	a := si.Tables[0]
	want := ts.srv.Table("a").Info()
	if a.Name != "a" || a.Sampler != want.Sampler || a.Remover != want.Remover || a.MaxSize != 10 || a.MaxTimesSampled != 3 ||
		a.RateLimiter != want.RateLimiter || a.Limiter != want.Limiter || a.Size != 1 || a.Signature == nil || a.Signature.Columns[0].Name != "x" {
		t.Fatalf("table info %+v, want %+v", a, want)
	}
	if err := c.MutatePriorities(ctx, "a", map[uint64]float64{1: 7}, nil); err != nil {
		t.Fatal(err)
	}
	s, _ := c.NewSampler("a")
	got, err := s.Next(ctx)
	s.Close()
	if err != nil || got.Info.Priority != 7 || got.Info.Probability != 1 {
		t.Fatalf("after mutate %+v %v", got.Info, err)
	}
	if err := c.Reset(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if in := ts.srv.Table("a").Info(); in.Size != 0 || in.Limiter.Inserts != 0 {
		t.Fatalf("after reset %+v", in)
	}
	if ts.srv.Chunks().Len() != 1 {
		t.Fatal("chunk still used by table b was dropped")
	}
}

func TestAuthToken(t *testing.T) {
	opts := oneTable(table.Options{})
	opts.AuthToken = "s3cret"
	ts := startServer(t, opts)
	ctx := context.Background()
	for _, tok := range []string{"", "wrong"} {
		var o []Option
		if tok != "" {
			o = append(o, WithAuthToken(tok))
		}
		c := dial(t, ts.addr, o...)
		if _, err := c.ServerInfo(ctx); status.Code(err) != codes.Unauthenticated || !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token %q: %v", tok, err)
		}
		s, _ := c.NewSampler("t")
		if _, err := s.Next(ctx); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("stream with token %q: %v", tok, err)
		}
		s.Close()
	}
	c := dial(t, ts.addr, WithAuthToken("s3cret"))
	if _, err := c.ServerInfo(ctx); err != nil {
		t.Fatal(err)
	}
	// Health checks need no token.
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.ForceCodec(protoCodec{}))
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	opts := oneTable(table.Options{})
	opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts := startServer(t, opts)
	ctx := context.Background()
	c := dial(t, ts.addr, WithTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
	if _, err := c.ServerInfo(ctx); err != nil {
		t.Fatal(err)
	}
	// A plaintext client and one that does not trust the certificate fail.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := Dial(short, ts.addr); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("plaintext dial: %v", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, err := Dial(short2, ts.addr, WithTLS(&tls.Config{ServerName: "127.0.0.1"})); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("untrusted dial: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Logger: discardLogger(), Tables: []table.Options{{Name: "t", RateLimiter: ratelimit.Must(ratelimit.MinSize(1000))}}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	c := dial(t, lis.Addr().String())
	ctx := context.Background()
	k := encodeChunk(t, 1, 1, "x", tensor.Scalar(uint8(1)))
	if keys, err := rawInsert(ctx, c, []*table.Chunk{k}, []insertItem{{table: "t", key: 1, priority: 1, trajectory: whole(k)}}, nil); err != nil || len(keys) != 1 {
		t.Fatalf("insert %v %v", keys, err)
	}
	// A sampler blocked on the limiter (min size 1000) must be released.
	s, _ := c.NewSampler("t")
	defer s.Close()
	errs := make(chan error, 1)
	go func() { _, err := s.Next(ctx); errs <- err }()
	waitUntil(t, func() bool { return srv.Table("t").Info().SamplesWaiting == 1 })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("sampler should keep retrying an unavailable server, got %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := c.ServerInfo(ctx); status.Code(err) != codes.Unavailable || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after shutdown: %v", err)
	}
}

func TestConcurrentInsertAndSample(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{MaxSize: 100, RateLimiter: ratelimit.Must(ratelimit.SampleToInsertRatio(1, 10, 50))}))
	c := dial(t, ts.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				var chunks []*table.Chunk
				var items []insertItem
				for j := 0; j < 10; j++ {
					key := uint64(w*100000 + i*100 + j + 1)
					ch := encodeChunk(t, key, uint64(w), "x", tensor.MustFromSlice([]float32{float32(key)}))
					chunks = append(chunks, ch)
					items = append(items, insertItem{table: "t", key: key, priority: 1, trajectory: whole(ch)})
				}
				if _, err := rawInsert(ctx, c, chunks, items, nil); err != nil && ctx.Err() == nil {
					t.Errorf("insert: %v", err)
					return
				}
			}
		}()
	}
	s, err := c.NewSampler("t", WithWorkers(2), WithPrefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inserted := make(chan struct{})
	go func() { wg.Wait(); close(inserted) }()
	// Sample until every insert went through (the limiter needs samples
	// for inserts to proceed), and at least 300 times.
	for n := 0; ; n++ {
		if n >= 300 {
			select {
			case <-inserted:
				return
			default:
			}
		}
		got, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := tensor.ToSlice[float32](got.Columns[0])
		if uint64(v[0]) != got.Info.Key {
			t.Fatalf("sample %d: data %v for key %d", n, v, got.Info.Key)
		}
	}
}

func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "replay-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestRawBench(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	ctx := context.Background()
	if err := c.BenchRawInsert(ctx, 4096, 100, 8); err != nil {
		t.Fatal(err)
	}
	if err := c.BenchRawSample(ctx, 4096, 100, 16); err != nil {
		t.Fatal(err)
	}
}

func TestMaxSamplesTakesNoMoreFromTheTable(t *testing.T) {
	o, _ := table.QueueOptions("q", 100)
	ts := startServer(t, ServerOptions{Tables: []table.Options{o}})
	c := dial(t, ts.addr)
	ctx := context.Background()
	var chunks []*table.Chunk
	var items []insertItem
	for k := uint64(1); k <= 20; k++ {
		ch := encodeChunk(t, k, 1, "x", tensor.Scalar(int32(k)))
		chunks = append(chunks, ch)
		items = append(items, insertItem{table: "q", key: k, priority: 1, trajectory: whole(ch)})
	}
	if _, err := rawInsert(ctx, c, chunks, items, nil); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 3} {
		s, err := c.NewSampler("q", WithMaxSamples(4), WithWorkers(workers), WithPrefetch(64))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			if _, err := s.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after 4: %v", err)
		}
		s.Close()
	}
	if got := ts.srv.Table("q").Size(); got != 12 {
		t.Fatalf("queue holds %d items, want 20-8 = 12", got)
	}
}

// TestDeadlineKinds: a rate-limiter timeout the client asked for matches
// ErrRateLimiterTimeout; the expiry of the caller's own context, reported
// by gRPC with the same code, matches context.DeadlineExceeded only.
func TestDeadlineKinds(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{Name: "t", RateLimiter: ratelimit.Must(ratelimit.MinSize(1))}))
	c := dial(t, ts.addr)

	s, err := c.NewSampler("t", WithRateLimiterTimeout(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Next(context.Background())
	s.Close()
	if !errors.Is(err, ErrRateLimiterTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("limiter timeout: %v, want ErrRateLimiterTimeout and context.DeadlineExceeded", err)
	}

	s, err = c.NewSampler("t") // no limiter timeout: waits for the caller
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.Next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRateLimiterTimeout) {
		t.Errorf("caller's deadline: %v, want context.DeadlineExceeded and not ErrRateLimiterTimeout", err)
	}

	// A unary call whose deadline passes in gRPC itself.
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err = c.Reset(ctx, "t")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRateLimiterTimeout) {
		t.Errorf("unary call past its deadline: %v, want context.DeadlineExceeded only", err)
	}
}

// TestDuplicateChunkInOneRequest: a chunk key sent twice in one request (or
// again in a later one) is stored once.
func TestDuplicateChunkInOneRequest(t *testing.T) {
	ts := startServer(t, oneTable(table.Options{}))
	c := dial(t, ts.addr)
	st, err := c.rpc.Insert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := encodeChunk(t, 1, 1, "x", tensor.Scalar(int64(1)))
	item := func(key uint64) []insertItem {
		return []insertItem{{table: "t", key: key, priority: 1, trajectory: whole(a)}}
	}
	for i, req := range []*outOfLineMessage{
		buildInsertMessage([]*table.Chunk{a, a}, nil, item(10), nil, 0),
		buildInsertMessage([]*table.Chunk{a}, nil, item(11), nil, 0),
	} {
		if err := st.SendMsg(req); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := ts.srv.Chunks().Len(); got != 1 {
		t.Fatalf("%d chunks stored, want 1", got)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	// The stream's hold is gone; the two items hold the one chunk.
	if got := ts.srv.Chunks().Len(); got != 1 {
		t.Fatalf("after the stream ended: %d chunks stored, want 1", got)
	}
	if err := c.Reset(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if got := ts.srv.Chunks().Len(); got != 0 {
		t.Fatalf("after reset: %d chunks stored, want 0", got)
	}
}
