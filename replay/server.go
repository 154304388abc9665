package replay

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	flatbuffers "github.com/google/flatbuffers/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/recall-rl/recall/replay/internal/wire"
	"github.com/recall-rl/recall/table"
)

// Version is reported by ServerInfo.
const Version = "0.1.0"

// serviceName is the gRPC service name of the replay service, also used for
// its health status.
const serviceName = "recall.wire.ReplayService"

// Defaults for ServerOptions.
const (
	DefaultMaxMessageBytes   = 64 << 20
	DefaultSampleBatchBytes  = 1 << 20
	DefaultMaxPendingBytes   = 1 << 30
	DefaultMaxSamplesPerSend = 1024
)

// ServerOptions configure a Server. Zero values get defaults; NewServer
// validates.
type ServerOptions struct {
	// Tables to serve; at least one, names unique.
	Tables []table.Options
	// MaxMessageBytes caps received and sent messages. Default 64 MiB.
	MaxMessageBytes int
	// MaxPendingBytes bounds the chunk data an insert stream may hold that
	// its client has not released; beyond it the stream fails with
	// ResourceExhausted. Default 1 GiB.
	MaxPendingBytes int64
	// SampleBatchBytes is the chunk payload a sample response aims not to
	// exceed (a single larger sample is still sent). Default 1 MiB.
	SampleBatchBytes int
	// TLS, when set, serves TLS with this config.
	TLS *tls.Config
	// AuthToken, when set, is required as "authorization: Bearer TOKEN"
	// metadata on every RPC, health checks excepted.
	AuthToken string
	// Logger receives the server's logs. Default: slog.Default().
	Logger *slog.Logger
	// Checkpoint configures checkpoints, restore at start and durable mode
	// (checkpoint.go, durable.go). Off without a directory.
	Checkpoint CheckpointOptions
}

// Validate checks the options (after defaults) and every table's options.
func (o *ServerOptions) Validate() error {
	if len(o.Tables) == 0 {
		return fmt.Errorf("%w: no tables", ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for i := range o.Tables {
		t := o.Tables[i]
		t.EnsureDefaults()
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tables[%d]: %w", i, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: tables[%d]: duplicate table name %q", ErrInvalidArgument, i, t.Name)
		}
		seen[t.Name] = true
	}
	if o.MaxMessageBytes < 0 || o.SampleBatchBytes < 0 || o.MaxPendingBytes < 0 {
		return fmt.Errorf("%w: negative message size", ErrInvalidArgument)
	}
	return nil
}

func (o *ServerOptions) ensureDefaults() {
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.SampleBatchBytes == 0 {
		o.SampleBatchBytes = DefaultSampleBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Server serves replay tables over gRPC. Create it with NewServer, start it
// with Serve and stop it with Shutdown (graceful) or Stop.
type Server struct {
	wire.UnimplementedReplayServiceServer

	opts    ServerOptions
	log     *slog.Logger
	chunks  *table.ChunkStore
	tables  map[string]*table.Table
	names   []string
	stateID string
	grpc    *grpc.Server
	health  *health.Server
	metrics *metrics
	// ckpt runs checkpoints and durable is the durable store; nil when off.
	ckpt    *checkpointer
	durable *durable

	// drain is cancelled when shutdown begins; handlers derive from it.
	drain     context.Context
	drainStop context.CancelCauseFunc

	mu struct {
		sync.Mutex
		shutdown bool
	}
	handlers sync.WaitGroup
}

// NewServer builds the tables and the gRPC server; it does not listen.
func NewServer(opts ServerOptions) (*Server, error) {
	opts.ensureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		chunks: table.NewChunkStore(),
		tables: make(map[string]*table.Table, len(opts.Tables)),
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	s.stateID = hex.EncodeToString(id[:])
	for _, to := range opts.Tables {
		to.Chunks = s.chunks
		t, err := table.New(to)
		if err != nil {
			s.closeTables()
			return nil, err
		}
		s.tables[t.Name()] = t
		s.names = append(s.names, t.Name())
	}
	s.metrics = newMetrics(s.names)
	if err := s.openCheckpoints(); err != nil {
		s.closeTables()
		return nil, err
	}
	s.drain, s.drainStop = context.WithCancelCause(context.Background())

	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxMessageBytes),
		grpc.MaxSendMsgSize(opts.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(s.unaryAuth, s.unaryRecover),
		grpc.ChainStreamInterceptor(s.streamAuth, s.streamRecover),
		grpc.InitialWindowSize(4 << 20),
		grpc.InitialConnWindowSize(16 << 20),
		grpc.ReadBufferSize(256 << 10),
		grpc.WriteBufferSize(256 << 10),
	}
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(gopts...)
	wire.RegisterReplayServiceServer(s.grpc, s)
	s.grpc.RegisterService(&rawBenchDesc, nil)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
	return s, nil
}

// Serve accepts connections on lis until Stop or Shutdown. It returns nil
// after a shutdown.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Table returns the named table, or nil.
func (s *Server) Table(name string) *table.Table { return s.tables[name] }

// Chunks returns the store shared by the server's tables.
func (s *Server) Chunks() *table.ChunkStore { return s.chunks }

// Shutdown stops accepting RPCs, ends sample streams and limiter waits with
// Unavailable, lets insert streams acknowledge what they inserted, and
// waits for handlers to return or ctx to end (then it cuts connections).
// Finally it closes the tables. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.shutdown {
		s.mu.Unlock()
		return nil
	}
	s.mu.shutdown = true
	s.mu.Unlock()
	s.health.Shutdown()
	s.drainStop(errShuttingDown)
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.grpc.Stop()
		<-done
	}
	s.handlers.Wait()
	s.closeCheckpoints()
	s.closeTables()
	return err
}

// Stop cuts all connections at once and closes the tables.
func (s *Server) Stop() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
}

func (s *Server) closeTables() {
	for _, t := range s.tables {
		t.Close()
	}
}

func (s *Server) table(name string) (*table.Table, error) {
	if t, ok := s.tables[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q (tables: %s)", ErrTableNotFound, name, strings.Join(s.names, ", "))
}

// handlerContext derives a context that ends with the stream or when the
// server starts draining (cause errShuttingDown).
func (s *Server) handlerContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(s.drain, func() { cancel(errShuttingDown) })
	s.handlers.Add(1)
	return ctx, func() {
		stop()
		cancel(nil)
		s.handlers.Done()
	}
}

// --- Insert -----------------------------------------------------------------

// insertMsg is a received and parsed InsertRequest, or the error receiving
// or parsing it.
type insertMsg struct {
	req insertRequest
	n   int
	err error
}

// Insert receives chunks and items; items are inserted in order and their
// keys acknowledged once per request.
func (s *Server) Insert(stream wire.ReplayService_InsertServer) error {
	ctx, done := s.handlerContext(stream.Context())
	defer done()

	// A reader goroutine receives and parses the next request while the
	// current one is inserted. It exits when the stream ends.
	msgs := make(chan insertMsg, 2)
	go func() {
		defer close(msgs)
		for {
			m, err := stream.Recv()
			if err != nil {
				select {
				case msgs <- insertMsg{err: err}:
				case <-ctx.Done():
				}
				return
			}
			buf := messageBytes(m)
			req, err := parseInsertRequest(buf)
			select {
			case msgs <- insertMsg{req: req, n: len(buf), err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	pending := &pendingChunks{refs: make(map[uint64]*table.ChunkRef)}
	defer pending.releaseAll()
	var acked []uint64
	for {
		var m insertMsg
		ok := false
		select {
		case m, ok = <-msgs:
		case <-ctx.Done():
		}
		if !ok {
			// The reader closes msgs without a last message only once ctx
			// has ended.
			return toStatus(ctx, context.Cause(ctx))
		}
		if errors.Is(m.err, io.EOF) {
			return nil
		}
		if m.err != nil {
			if errors.Is(m.err, errMalformed) {
				return toStatus(ctx, fmt.Errorf("insert: %w", m.err))
			}
			return m.err
		}
		s.metrics.insertBytes.Add(int64(m.n))
		var dtok durableToken
		if s.durable != nil {
			dtok = s.durable.begin(&m.req, pending.refs)
		}
		var err error
		acked, err = s.insertRequest(ctx, &m.req, pending, acked[:0])
		if s.durable != nil {
			// Acknowledged items must be in the durable store first.
			acked, err = s.durable.commitInsert(dtok, &m.req, acked, err)
		}
		if len(acked) > 0 {
			if serr := stream.Send(buildInsertResponse(acked)); serr != nil {
				return serr
			}
		}
		if err != nil {
			return toStatus(ctx, err)
		}
	}
}

// pendingChunks are the chunks an insert stream holds for its items: sent
// by the client and not yet released by it.
type pendingChunks struct {
	refs  map[uint64]*table.ChunkRef
	bytes int64
}

func (p *pendingChunks) releaseAll() {
	for _, r := range p.refs {
		r.Release()
	}
	clear(p.refs)
	p.bytes = 0
}

// insertRequest stores a request's chunks as pending, inserts its items and
// then releases the chunks the client lists. It returns the keys inserted,
// even when it fails part way.
func (s *Server) insertRequest(ctx context.Context, req *insertRequest, pending *pendingChunks, acked []uint64) ([]uint64, error) {
	var fresh []*table.Chunk
	added := pending.bytes
	for _, c := range req.chunks {
		if len(c.Data) == 0 {
			return acked, fmt.Errorf("%w: chunk %d has no data", ErrInvalidArgument, c.Key)
		}
		if _, ok := pending.refs[c.Key]; ok {
			continue // resent on this stream: keep the first copy
		}
		if added+int64(len(c.Data)) > s.opts.MaxPendingBytes {
			return acked, fmt.Errorf("%w: the stream holds %d bytes of chunks its client never released (limit %d)", ErrResourceExhausted, pending.bytes, s.opts.MaxPendingBytes)
		}
		added += int64(len(c.Data))
		fresh = append(fresh, c)
	}
	// One allocation for the references of the whole request: fewer
	// objects for the garbage collector to trace per stored chunk.
	for i, r := range s.chunks.AddAll(fresh) {
		c := fresh[i]
		if _, ok := pending.refs[c.Key]; ok {
			r.Release() // the same key twice in one request: keep the first
			continue
		}
		pending.refs[c.Key] = r
		pending.bytes += int64(len(c.Data))
	}
	// Resolve and check every item before inserting any, so that a request
	// with a bad item changes nothing, whatever tables it spans
	// (InsertBatch checks again, but only its own table's items).
	items := make([]table.Item, len(req.items))
	tables := make([]*table.Table, len(req.items))
	var refPool []*table.ChunkRef // the items' chunk lists, carved from one block
	var t *table.Table
	for i := range req.items {
		ri := &req.items[i]
		if t == nil || t.Name() != ri.table {
			var err error
			if t, err = s.table(ri.table); err != nil {
				return acked, fmt.Errorf("item %d: %w", ri.key, err)
			}
		}
		if cap(refPool)-len(refPool) < 4*len(ri.trajectory) {
			refPool = make([]*table.ChunkRef, 0, max(64, 4*len(ri.trajectory)*(len(req.items)-i)))
		}
		start := len(refPool)
		for _, col := range ri.trajectory {
		slices:
			for _, sl := range col.Slices {
				for _, r := range refPool[start:] {
					if r.Key() == sl.ChunkKey {
						continue slices
					}
				}
				r, ok := pending.refs[sl.ChunkKey]
				if !ok {
					return acked, fmt.Errorf("%w: item %d references chunk %d, which was never sent on this stream (or was released)", ErrInvalidArgument, ri.key, sl.ChunkKey)
				}
				refPool = append(refPool, r)
			}
		}
		refs := refPool[start:len(refPool):len(refPool)]
		items[i] = table.Item{Key: ri.key, Priority: ri.priority, Trajectory: ri.trajectory, Chunks: refs}
		if err := t.CheckItem(&items[i]); err != nil {
			return acked, fmt.Errorf("table %q: %w", ri.table, err)
		}
		tables[i] = t
	}
	// Consecutive items of one table go in as one batch.
	for i := 0; i < len(items); {
		t := tables[i]
		j := i + 1
		for j < len(items) && tables[j] == t {
			j++
		}
		n, err := t.InsertBatch(ctx, items[i:j])
		s.metrics.inserted(t.Name(), n)
		for _, it := range items[i : i+n] {
			acked = append(acked, it.Key)
		}
		if err != nil {
			return acked, err
		}
		i = j
	}
	for _, k := range req.release {
		if r, ok := pending.refs[k]; ok {
			pending.bytes -= int64(len(r.Chunk().Data))
			r.Release()
			delete(pending.refs, k)
		}
	}
	return acked, nil
}

// --- Sample -----------------------------------------------------------------

// Sample streams samples of one table, never more than the credit the client
// has granted.
func (s *Server) Sample(stream wire.ReplayService_SampleServer) error {
	ctx, done := s.handlerContext(stream.Context())
	defer done()

	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	req, err := parseSampleRequest(messageBytes(first))
	if err != nil {
		return toStatus(ctx, fmt.Errorf("sample: %w", err))
	}
	t, err := s.table(req.table)
	if err != nil {
		return toStatus(ctx, err)
	}

	credit := newCreditCounter(1)
	credit.add(int64(req.credit))
	readErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				credit.close()
				return
			}
			r, err := parseSampleRequest(messageBytes(m))
			if err != nil {
				readErr <- toStatus(ctx, fmt.Errorf("sample: %w", err))
				credit.close()
				return
			}
			credit.add(int64(r.credit))
		}
	}()

	var sent int64
	var buf []table.Sampled
	var rw sampleResponseWriter
	avgBytes := 0
	var window int64 // the most credit the client has had outstanding
	for {
		if req.maxSamples > 0 && sent >= req.maxSamples {
			return nil
		}
		n, open := credit.wait(ctx)
		if n == 0 {
			select {
			case err := <-readErr:
				return err
			default:
			}
			if !open {
				return nil // client finished and all its credit is spent
			}
			return toStatus(ctx, context.Cause(ctx))
		}
		want := n
		if req.maxSamples > 0 {
			want = min(want, req.maxSamples-sent)
		}
		limit := DefaultMaxSamplesPerSend
		if avgBytes > 0 {
			limit = max(1, min(limit, s.opts.SampleBatchBytes/avgBytes))
		}
		// Send the client's window in several responses, so that it
		// decodes one while the next is built: a fast client returns its
		// credit in a burst, and one response of the whole window would
		// leave one side idle while the other works.
		window = max(window, n)
		limit = min(limit, int(max(1, (window+samplePipelineDepth-1)/samplePipelineDepth)))
		want = min(want, int64(limit))

		sctx, cancel := ctx, context.CancelFunc(func() {})
		if req.timeout > 0 {
			sctx, cancel = context.WithTimeout(ctx, req.timeout)
		}
		buf, err = t.SampleInto(sctx, buf[:0], int(want), true)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return toStatus(ctx, context.Cause(ctx))
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return rateLimiterTimeoutStatus(err) // sctx's timeout
			}
			return toStatus(ctx, err)
		}
		credit.take(int64(len(buf)))
		// A pooled builder goes back to its pool once gRPC has written it,
		// and the chunk payloads follow it as they are stored: the
		// response copies no payload and allocates one small list.
		resp := &outOfLineMessage{fb: getBuilder()}
		var bytes int
		resp.payloads, bytes = rw.build(resp.fb.b, buf, minOutOfLine, make([][]byte, 0, len(buf)))
		avgBytes = max(1, bytes/len(buf))
		s.metrics.sampled(t.Name(), len(buf), resp.size())
		clear(buf) // drop chunk pointers so evicted data can be collected
		if err := stream.SendMsg(resp); err != nil {
			return err
		}
		sent += int64(len(buf))
	}
}

// creditCounter counts credit that one goroutine waits for and others
// add to: in Server.Sample the samples a client granted that were not sent
// yet, in a Sampler the samples handed to Next whose credit was not
// returned to the server yet.
type creditCounter struct {
	n      atomic.Int64
	closed atomic.Bool   // no more credit comes
	wakeAt int64         // wait returns once n reaches it
	notify chan struct{} // wakes wait; buffered, so add never blocks
}

func newCreditCounter(wakeAt int64) *creditCounter {
	return &creditCounter{wakeAt: max(1, wakeAt), notify: make(chan struct{}, 1)}
}

// add adds n and wakes the waiter if the credit reaches wakeAt.
func (c *creditCounter) add(n int64) {
	if n > 0 && c.n.Add(n) >= c.wakeAt {
		c.kick()
	}
}

// take removes n, no more than wait returned.
func (c *creditCounter) take(n int64) { c.n.Add(-n) }

// reset drops all credit.
func (c *creditCounter) reset() { c.n.Store(0) }

// close tells the waiter that no more credit comes (a client half-closed
// its side).
func (c *creditCounter) close() {
	c.closed.Store(true)
	c.kick()
}

func (c *creditCounter) kick() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// wait returns the credit once it reaches wakeAt, or 0 when no more will
// come (open false) or ctx ends.
func (c *creditCounter) wait(ctx context.Context) (n int64, open bool) {
	for {
		closed := c.closed.Load() // before n: every add came before close
		if n := c.n.Load(); n >= c.wakeAt {
			return n, true
		}
		if closed {
			return 0, false
		}
		select {
		case <-c.notify:
		case <-ctx.Done():
			return 0, true
		}
	}
}

// --- unary ------------------------------------------------------------------

// MutatePriorities deletes and updates items of one table.
func (s *Server) MutatePriorities(ctx context.Context, in *wire.MutatePrioritiesRequest) (*flatbuffers.Builder, error) {
	req, err := parseMutateRequest(messageBytes(in))
	if err != nil {
		return nil, toStatus(ctx, fmt.Errorf("mutate priorities: %w", err))
	}
	t, err := s.table(req.table)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if err := s.mutatePriorities(ctx, t, req.updates, req.deletes); err != nil {
		return nil, toStatus(ctx, err)
	}
	return emptyMessage(wire.MutatePrioritiesResponseStart, wire.MutatePrioritiesResponseEnd), nil
}

// Reset empties one table and zeroes its counters.
func (s *Server) Reset(ctx context.Context, in *wire.ResetRequest) (*flatbuffers.Builder, error) {
	name, err := parseResetRequest(messageBytes(in))
	if err != nil {
		return nil, toStatus(ctx, fmt.Errorf("reset: %w", err))
	}
	t, err := s.table(name)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if err := s.resetTable(ctx, t); err != nil {
		return nil, toStatus(ctx, err)
	}
	s.log.Info("table reset", "table", name)
	return emptyMessage(wire.ResetResponseStart, wire.ResetResponseEnd), nil
}

// Checkpoint writes a checkpoint (see WriteCheckpoint) and returns its
// path; Unimplemented on a server without a checkpoint directory.
func (s *Server) Checkpoint(ctx context.Context, in *wire.CheckpointRequest) (*flatbuffers.Builder, error) {
	return s.checkpointRPC(ctx)
}

// ServerInfo describes every table.
func (s *Server) ServerInfo(ctx context.Context, in *wire.ServerInfoRequest) (*flatbuffers.Builder, error) {
	return buildServerInfo(s.Info()), nil
}

// Info returns the same description ServerInfo sends.
func (s *Server) Info() ServerInfo {
	si := ServerInfo{TablesStateID: s.stateID, Version: Version, NumChunks: s.chunks.Len(), ChunkBytes: s.chunks.Bytes()}
	for _, name := range s.names {
		si.Tables = append(si.Tables, s.tables[name].Info())
	}
	return si
}

// --- interceptors -----------------------------------------------------------

func (s *Server) checkAuth(ctx context.Context, method string) error {
	if s.opts.AuthToken == "" || strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.AuthToken)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "replay: missing or invalid auth token")
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.checkAuth(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.checkAuth(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// unaryRecover and streamRecover are the last line of defence: a panic in a
// handler becomes Internal for that call and is logged; the server lives.
func (s *Server) unaryRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer s.recoverPanic(info.FullMethod, &err)
	return h(ctx, req)
}

func (s *Server) streamRecover(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer s.recoverPanic(info.FullMethod, &err)
	return h(srv, ss)
}

func (s *Server) recoverPanic(method string, err *error) {
	if r := recover(); r != nil {
		s.log.Error("panic in handler", "method", method, "panic", r)
		*err = status.Errorf(codes.Internal, "replay: internal error in %s", method)
	}
}

// tableNames returns the sorted table names (for messages and metrics).
func (s *Server) tableNames() []string {
	names := slices.Clone(s.names)
	slices.Sort(names)
	return names
}
