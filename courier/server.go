package courier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// DefaultAddr is the address Listen binds when given "": loopback, with a
// port picked by the kernel.
const DefaultAddr = "127.0.0.1:0"

// ServiceName is the gRPC service courier registers; the standard health
// service reports it SERVING while the Server serves.
const ServiceName = "courier.Courier"

// MethodInfo describes one RPC of a Server, as ListMethods reports it.
type MethodInfo struct {
	// Name is the method's name.
	Name string
	// Params holds the wire type descriptor of each parameter, not counting
	// a leading context.
	Params []string
	// Result is the wire type descriptor of the result, "" when the method
	// returns no value.
	Result string
	// Batched reports that calls are gathered into batches (WithBatching).
	Batched bool
}

// String formats m like a Go signature, e.g. "Add(int64, int64) int64".
func (m MethodInfo) String() string {
	var b strings.Builder
	b.WriteString(m.Name)
	b.WriteByte('(')
	b.WriteString(strings.Join(m.Params, ", "))
	b.WriteByte(')')
	if m.Result != "" {
		b.WriteByte(' ')
		b.WriteString(m.Result)
	}
	return b.String()
}

// method is one registered RPC.
type method struct {
	name     string
	fn       reflect.Value // bound method value
	hasCtx   bool
	variadic bool
	params   []*typeCodec
	sig      string // parameter descriptors joined by ","
	result   *typeCodec
	hasErr   bool
	batch    *batcher
	plans    boundedCache[*argPlan] // by received signature
}

func (m *method) info() MethodInfo {
	info := MethodInfo{Name: m.name, Params: make([]string, len(m.params)), Batched: m.batch != nil}
	for i, p := range m.params {
		info.Params[i] = p.desc
	}
	if m.result != nil {
		info.Result = m.result.desc
	}
	return info
}

// signature describes the accepted method shapes; see newMethod.
type signature struct {
	hasCtx   bool
	params   []reflect.Type
	result   reflect.Type // nil for none
	hasErr   bool
	variadic bool
}

// parseSignature checks that ft has one of the accepted shapes:
//
//	func([ctx context.Context,] args...)
//	func([ctx context.Context,] args...) error
//	func([ctx context.Context,] args...) R
//	func([ctx context.Context,] args...) (R, error)
func parseSignature(name string, ft reflect.Type) (signature, error) {
	sig := signature{variadic: ft.IsVariadic()}
	for i := 0; i < ft.NumIn(); i++ {
		pt := ft.In(i)
		if i == 0 && pt == contextType {
			sig.hasCtx = true
			continue
		}
		sig.params = append(sig.params, pt)
	}
	switch n := ft.NumOut(); {
	case n == 0:
	case n == 1 && ft.Out(0) == errorType:
		sig.hasErr = true
	case n == 1:
		sig.result = ft.Out(0)
	case n == 2 && ft.Out(1) == errorType:
		sig.result, sig.hasErr = ft.Out(0), true
	default:
		outs := make([]string, n)
		for i := range outs {
			outs[i] = ft.Out(i).String()
		}
		return sig, fmt.Errorf("courier: method %s: results (%s) are not supported: want none, R, error or (R, error)",
			name, strings.Join(outs, ", "))
	}
	return sig, nil
}

// paramIndex is the 1-based position of params[i] in the Go signature.
func (s signature) paramIndex(i int) int {
	if s.hasCtx {
		return i + 2
	}
	return i + 1
}

func newMethod(name string, fn reflect.Value) (*method, error) {
	sig, err := parseSignature(name, fn.Type())
	if err != nil {
		return nil, err
	}
	m := &method{name: name, fn: fn, hasCtx: sig.hasCtx, variadic: sig.variadic, hasErr: sig.hasErr}
	m.plans.limit = maxPlansPerMethod
	descs := make([]string, len(sig.params))
	for i, pt := range sig.params {
		c, err := codecFor(pt)
		if err != nil {
			return nil, fmt.Errorf("courier: method %s: parameter %d: %w", name, sig.paramIndex(i), err)
		}
		m.params = append(m.params, c)
		descs[i] = c.desc
	}
	m.sig = strings.Join(descs, ",")
	if sig.result != nil {
		if m.result, err = codecFor(sig.result); err != nil {
			return nil, fmt.Errorf("courier: method %s: result: %w", name, err)
		}
	}
	return m, nil
}

// maxPlansPerMethod bounds each method's cache of received signatures.
const maxPlansPerMethod = 256

// argPlan says how received arguments map to parameters when the
// signature is not byte-for-byte the expected one.
type argPlan struct {
	nilArg []bool // the argument is an untyped nil: use the zero value
}

// planFor checks a received argument signature against m's parameters.
func (m *method) planFor(sig string) (*argPlan, error) {
	if p, ok := m.plans.get(sig); ok {
		return p, nil
	}
	got := splitSig(sig)
	mismatch := func() error {
		return fmt.Errorf("courier: %s called with (%s), want (%s)", m.name, strings.Join(got, ", "), strings.ReplaceAll(m.sig, ",", ", "))
	}
	if len(got) != len(m.params) {
		return nil, mismatch()
	}
	p := &argPlan{nilArg: make([]bool, len(got))}
	for i, d := range got {
		if d == nilDesc {
			switch m.params[i].typ.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map:
				p.nilArg[i] = true
				continue
			}
			return nil, mismatch()
		}
		if compatible(m.params[i], d) != nil {
			return nil, mismatch()
		}
	}
	m.plans.put(sig, p)
	return p, nil
}

// Server serves the exported methods of one Go value over gRPC. Create it
// with NewServer, start it with Serve or Listen, and release it with Stop or
// GracefulStop. Its methods are safe for concurrent use.
type Server struct {
	methods  map[string]*method
	infos    []MethodInfo
	logger   *slog.Logger
	grpc     *grpc.Server
	health   *health.Server
	batchers []*batcher

	// ctx is cancelled when the server stops; batch contexts derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	// stopCh is closed when the server stops, ending the batch gatherers.
	stopCh   chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex // guards started, stopped and wg.Add
	started bool
	stopped bool
	// wg counts the goroutines the server owns: Listen's serving
	// goroutines and the batch gatherers.
	wg sync.WaitGroup
}

// NewServer registers every exported method of obj (pass a pointer to get
// pointer-receiver methods too) as an RPC. A method is accepted when it has
// one of the shapes
//
//	func (T) M([ctx context.Context,] args...)
//	func (T) M([ctx context.Context,] args...) error
//	func (T) M([ctx context.Context,] args...) R
//	func (T) M([ctx context.Context,] args...) (R, error)
//
// where every argument and R is a type the codec supports (see the package
// documentation). A variadic method takes its last argument as a slice. A
// method of any other shape, or with an unsupported type, makes NewServer
// fail with an error naming the method and the type; keep such methods out
// with WithoutMethods.
func NewServer(obj any, opts ...ServerOption) (*Server, error) {
	if obj == nil {
		return nil, errors.New("courier: NewServer: nil object")
	}
	o := defaultServerOptions()
	for _, opt := range opts {
		opt.applyServer(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.maxMsgSize <= 0 {
		return nil, fmt.Errorf("courier: NewServer: max message size %d is not positive", o.maxMsgSize)
	}
	v := reflect.ValueOf(obj)
	t := v.Type()
	s := &Server{methods: map[string]*method{}, logger: o.logger, stopCh: make(chan struct{})}
	for name := range o.exclude {
		if _, ok := t.MethodByName(name); !ok {
			return nil, fmt.Errorf("courier: WithoutMethods: %s has no exported method %s", t, name)
		}
	}
	for i := 0; i < t.NumMethod(); i++ {
		name := t.Method(i).Name
		if o.exclude[name] {
			continue
		}
		m, err := newMethod(name, v.Method(i))
		if err != nil {
			return nil, err
		}
		s.methods[name] = m
	}
	for _, spec := range o.batching {
		m, err := newBatchedMethod(s, v, spec, o.exclude)
		if err != nil {
			return nil, err
		}
		s.methods[spec.method] = m
		s.batchers = append(s.batchers, m.batch)
	}
	for _, m := range s.methods {
		s.infos = append(s.infos, m.info())
	}
	sort.Slice(s.infos, func(i, j int) bool { return s.infos[i].Name < s.infos[j].Name })

	gopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.MaxRecvMsgSize(o.maxMsgSize),
		grpc.MaxSendMsgSize(o.maxMsgSize),
		grpc.WaitForHandlers(true),
	}
	if o.tls != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(o.tls)))
	}
	s.grpc = grpc.NewServer(append(gopts, o.grpcOpts...)...)
	s.grpc.RegisterService(&serviceDesc, s)
	s.health = health.NewServer()
	s.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Methods returns the RPCs the server serves, sorted by name.
func (s *Server) Methods() []MethodInfo {
	out := make([]MethodInfo, len(s.infos))
	for i, m := range s.infos {
		m.Params = slices.Clone(m.Params)
		out[i] = m
	}
	return out
}

// start marks the server as serving, starting the batch gatherers the first
// time, and adds goroutines to wg. It fails once the server has stopped.
func (s *Server) start(goroutines int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return grpc.ErrServerStopped
	}
	if !s.started {
		s.started = true
		for _, b := range s.batchers {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				b.run(s.ctx, s.stopCh)
			}()
		}
		s.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
	}
	s.wg.Add(goroutines)
	return nil
}

// Serve accepts connections on lis until the server stops; it then returns
// nil. It may be called for several listeners. lis is closed on return.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.start(0); err != nil {
		lis.Close()
		return err
	}
	return s.grpc.Serve(lis)
}

// Listen binds a TCP address (DefaultAddr if addr is ""), serves it in a
// goroutine the server owns, and returns the bound address, with the port the
// kernel picked when addr asked for port 0. Serving errors are logged.
func (s *Server) Listen(addr string) (string, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("courier: listen: %w", err)
	}
	if err := s.start(1); err != nil {
		lis.Close()
		return "", err
	}
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.logger.Error("courier: serve failed", "addr", lis.Addr().String(), "err", err)
		}
	}()
	return lis.Addr().String(), nil
}

// SetServing sets the status the health service reports for ServiceName:
// SERVING or NOT_SERVING. Stop sets NOT_SERVING for good.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(serviceName, st)
}

// Stop stops the server: it closes the listeners and connections, cancels
// the contexts of running calls and batches, and waits until every handler
// and every goroutine the server started has returned.
func (s *Server) Stop() { s.shutdown(false) }

// GracefulStop stops accepting connections and calls, waits for the running
// calls to finish, then releases everything as Stop does.
func (s *Server) GracefulStop() { s.shutdown(true) }

func (s *Server) shutdown(graceful bool) {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.health.Shutdown()
	if graceful {
		s.grpc.GracefulStop()
	} else {
		s.cancel()
		s.grpc.Stop()
	}
	s.cancel()
	s.stopOnce.Do(func() { close(s.stopCh) })
	s.wg.Wait()
}

// handleCall serves one Call RPC.
func (s *Server) handleCall(ctx context.Context, req []byte) (outMsg, error) {
	d := decoder{buf: req}
	name, err := d.rawString()
	if err != nil {
		return outMsg{}, status.Errorf(codes.InvalidArgument, "courier: bad request: %v", err)
	}
	m := s.methods[string(name)]
	if m == nil {
		return outMsg{}, status.Errorf(codes.Unimplemented, "courier: unknown method %q", name)
	}
	sig, err := d.rawString()
	if err != nil {
		return outMsg{}, status.Errorf(codes.InvalidArgument, "courier: %s: bad request: %v", m.name, err)
	}
	var plan *argPlan
	if string(sig) != m.sig {
		if plan, err = m.planFor(string(sig)); err != nil {
			return outMsg{}, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	args := make([]reflect.Value, 0, len(m.params)+1)
	if m.hasCtx && m.batch == nil {
		args = append(args, reflect.ValueOf(ctx))
	}
	for i, p := range m.params {
		v := reflect.New(p.typ).Elem()
		if plan == nil || !plan.nilArg[i] {
			if err := p.dec(&d, v); err != nil {
				return outMsg{}, status.Errorf(codes.InvalidArgument, "courier: %s: argument %d: %v", m.name, i+1, err)
			}
		}
		args = append(args, v)
	}
	if d.remaining() != 0 {
		return outMsg{}, status.Errorf(codes.InvalidArgument, "courier: %s: %d trailing bytes after the arguments", m.name, d.remaining())
	}
	var result reflect.Value
	if m.batch != nil {
		result, err = m.batch.submit(ctx, s.stopCh, args)
	} else {
		result, err = s.invoke(m, args)
	}
	if err != nil {
		return outMsg{}, err
	}
	resp, err := encodeResponse(m.result, result)
	if err != nil {
		return outMsg{}, status.Errorf(codes.Internal, "courier: %s: cannot encode result: %v", m.name, err)
	}
	return resp, nil
}

// invoke calls m, turning panics and errors into status errors.
func (s *Server) invoke(m *method, args []reflect.Value) (result reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicError(m.name, r)
		}
	}()
	var out []reflect.Value
	if m.variadic {
		out = m.fn.CallSlice(args)
	} else {
		out = m.fn.Call(args)
	}
	if m.hasErr {
		if e := out[len(out)-1]; !e.IsNil() {
			return reflect.Value{}, toStatus(e.Interface().(error))
		}
	}
	if m.result != nil {
		result = out[0]
	}
	return result, nil
}

func (s *Server) panicError(name string, r any) error {
	s.logger.Error("courier: method panicked", "method", name, "panic", r, "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "courier: method %s panicked: %v", name, r)
}

// toStatus maps an error returned by a method to the status sent to the
// caller: status errors keep their code, context errors become Canceled or
// DeadlineExceeded, anything else becomes Unknown.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

var methodInfosCodec = mustCodec[[]MethodInfo]()

func mustCodec[T any]() *typeCodec {
	c, err := codecFor(reflect.TypeFor[T]())
	if err != nil {
		panic(err)
	}
	return c
}

// handleListMethods serves the ListMethods RPC.
func (s *Server) handleListMethods(_ context.Context, _ []byte) (outMsg, error) {
	resp, err := encodeResponse(methodInfosCodec, reflect.ValueOf(s.infos))
	if err != nil {
		return outMsg{}, status.Errorf(codes.Internal, "courier: ListMethods: %v", err)
	}
	return resp, nil
}
