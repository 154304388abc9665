package courier_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/internal/tensor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type Obs struct {
	Step   int64
	Reward float32
	Frame  tensor.Tensor
	Meta   map[string]string
}

type Summary struct {
	Step  int64
	Total float64
	Dims  []int
}

// MySummary is Summary with other field names: wire compatible.
type MySummary struct {
	S int64
	T float64
	D []int
}

// service is the object the tests serve.
type service struct {
	calls     atomic.Int64
	started   chan string // Block sends its id once running
	cancelled chan string // Block sends its id when its context ends
}

func newService() *service {
	return &service{started: make(chan string, 100), cancelled: make(chan string, 100)}
}

func (s *service) Add(a, b int) int             { s.calls.Add(1); return a + b }
func (s *service) Echo(p []byte) []byte         { return p }
func (s *service) Nothing()                     { s.calls.Add(1) }
func (s *service) Sum(xs ...float64) float64    { return floatSum(xs) }
func (s *service) Deref(p *int64) int64         { return derefOr(p, -1) }
func (s *service) Len(m map[string]int) int     { return len(m) }
func (s *service) Wait(d time.Duration) float64 { return d.Seconds() }

func (s *service) Greet(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", status.Error(codes.InvalidArgument, "empty name")
	}
	return "hello, " + name, nil
}

func (s *service) Fail(code uint32, msg string) error {
	if code == 0 {
		return errors.New(msg)
	}
	return fmt.Errorf("wrapped: %w", status.Error(codes.Code(code), msg))
}

func (s *service) Panic(msg string) int { panic(msg) }

func (s *service) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Nap sends id on started, then sleeps for d or until ctx ends.
func (s *service) Nap(ctx context.Context, id string, d time.Duration) error {
	s.started <- id
	return s.Sleep(ctx, d)
}

// CtxErr returns a wrapped context error, without its own context ending.
func (s *service) CtxErr(deadline bool) error {
	if deadline {
		return fmt.Errorf("wrapped: %w", context.DeadlineExceeded)
	}
	return fmt.Errorf("wrapped: %w", context.Canceled)
}

func (s *service) Block(ctx context.Context, id string) error {
	s.started <- id
	<-ctx.Done()
	s.cancelled <- id
	return ctx.Err()
}

func (s *service) Summarize(o Obs) (Summary, error) {
	v, err := tensor.ToSlice[float32](o.Frame)
	if err != nil {
		return Summary{}, status.Error(codes.InvalidArgument, err.Error())
	}
	return Summary{Step: o.Step, Total: float64(o.Reward) + float64(floatSum32(v)), Dims: o.Frame.Shape}, nil
}

func (s *service) Scale(t tensor.Tensor, f float32) (tensor.Tensor, error) {
	v, err := tensor.ToSlice[float32](t)
	if err != nil {
		return tensor.Tensor{}, err
	}
	for i := range v {
		v[i] *= f
	}
	return tensor.FromSlice(v, t.Shape...)
}

func floatSum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

func floatSum32(xs []float32) float32 {
	var s float32
	for _, x := range xs {
		s += x
	}
	return s
}

func derefOr(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

func serve(t testing.TB, obj any, opts ...courier.ServerOption) (*courier.Server, string) {
	t.Helper()
	srv, err := courier.NewServer(obj, opts...)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv, addr
}

func dial(t testing.TB, addr string, opts ...courier.Option) *courier.Client {
	t.Helper()
	c, err := courier.Dial(context.Background(), addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func setup(t testing.TB, opts ...courier.ServerOption) (*service, *courier.Client) {
	t.Helper()
	svc := newService()
	_, addr := serve(t, svc, opts...)
	return svc, dial(t, addr)
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("err = %v (code %v), want code %v", err, got, code)
	}
	if !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Fatalf("err message %q does not contain %q", status.Convert(err).Message(), msgPart)
	}
}

func TestSyncCalls(t *testing.T) {
	ctx := context.Background()
	svc, c := setup(t)
	x := int64(9)
	for _, tc := range []struct {
		method string
		args   []any
		want   any
	}{
		{"Add", []any{2, 3}, int64(5)}, // int travels as int64
		{"Add", []any{int64(2), int64(3)}, int64(5)},
		{"Echo", []any{[]byte("hi")}, []byte("hi")},
		{"Echo", []any{[]byte(nil)}, []byte(nil)},
		{"Nothing", nil, nil},
		{"Sum", []any{[]float64{1, 2, 3.5}}, 6.5},
		{"Deref", []any{&x}, int64(9)},
		{"Deref", []any{nil}, int64(-1)},
		{"Deref", []any{(*int64)(nil)}, int64(-1)},
		{"Len", []any{map[string]int{"a": 1, "b": 2}}, int64(2)},
		{"Len", []any{nil}, int64(0)},
		{"Wait", []any{1500 * time.Millisecond}, 1.5},
		{"Greet", []any{"go"}, "hello, go"},
	} {
		got, err := c.Call(ctx, tc.method, tc.args...)
		if err != nil {
			t.Fatalf("%s%v: %v", tc.method, tc.args, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s%v = %#v, want %#v", tc.method, tc.args, got, tc.want)
		}
	}
	if n := svc.calls.Load(); n != 3 {
		t.Errorf("Add and Nothing ran %d times, want 3", n)
	}
}

func TestStructsAndTensors(t *testing.T) {
	ctx := context.Background()
	_, c := setup(t)
	frame := tensor.MustFromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	obs := Obs{Step: 7, Reward: 0.5, Frame: frame, Meta: map[string]string{"env": "cartpole"}}

	sum, err := courier.CallT[Summary](ctx, c, "Summarize", obs)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{Step: 7, Total: 21.5, Dims: []int{2, 3}}); !reflect.DeepEqual(sum, want) {
		t.Fatalf("Summarize = %+v, want %+v", sum, want)
	}
	// A type with other field names but the same shape decodes too.
	mine, err := courier.CallT[MySummary](ctx, c, "Summarize", obs)
	if err != nil || mine.S != 7 || mine.T != 21.5 {
		t.Fatalf("CallT[MySummary] = %+v, %v", mine, err)
	}
	// Untyped: a struct with the server's field names.
	v, err := c.Call(ctx, "Summarize", obs)
	if err != nil {
		t.Fatal(err)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Struct || rv.FieldByName("Total").Float() != 21.5 || rv.FieldByName("Step").Int() != 7 {
		t.Fatalf("Call(Summarize) = %#v", v)
	}

	scaled, err := courier.CallT[tensor.Tensor](ctx, c, "Scale", frame, float32(2))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tensor.ToSlice[float32](scaled)
	if want := []float32{2, 4, 6, 8, 10, 12}; !slices.Equal(got, want) || !slices.Equal(scaled.Shape, []int{2, 3}) {
		t.Fatalf("Scale = %v %v", scaled.Shape, got)
	}
	// A method's status code survives for a bad tensor.
	_, err = c.Call(ctx, "Summarize", Obs{Frame: tensor.MustFromSlice([]int32{1})})
	wantCode(t, err, codes.InvalidArgument, "not float32")
}

func TestTypedCalls(t *testing.T) {
	ctx := context.Background()
	_, c := setup(t)
	n, err := courier.CallT[int](ctx, c, "Add", 40, 2)
	if err != nil || n != 42 {
		t.Fatalf("CallT[int](Add) = %v, %v", n, err)
	}
	s, err := courier.CallT[string](ctx, c, "Greet", "typed")
	if err != nil || s != "hello, typed" {
		t.Fatalf("CallT[string](Greet) = %q, %v", s, err)
	}
	a, err := courier.CallT[any](ctx, c, "Add", 1, 1)
	if err != nil || a != int64(2) {
		t.Fatalf("CallT[any](Add) = %#v, %v", a, err)
	}
	_, err = courier.CallT[string](ctx, c, "Add", 1, 1)
	wantCode(t, err, codes.InvalidArgument, "cannot decode it into string")
	_, err = courier.CallT[int](ctx, c, "Nothing")
	wantCode(t, err, codes.InvalidArgument, "returns no result")
}

func TestListMethods(t *testing.T) {
	srv, addr := serve(t, newService(), courier.WithoutMethods("Panic"))
	c := dial(t, addr)
	ms, err := c.Methods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ms, srv.Methods()) {
		t.Fatalf("client sees %v, server has %v", ms, srv.Methods())
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.String())
	}
	all := strings.Join(names, "\n")
	for _, want := range []string{
		"Add(int64, int64) int64",
		"Greet(string) string", // the context is not a wire parameter
		"Nothing()",
		"Sum([]float64) float64",
		"Summarize(struct{Step int64; Reward float32; Frame tensor; Meta map[string]string}) struct{Step int64; Total float64; Dims []int64}",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("methods lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "Panic") {
		t.Errorf("excluded method Panic is listed")
	}
}

func TestErrorsKeepTheirCodes(t *testing.T) {
	ctx := context.Background()
	_, c := setup(t)

	_, err := c.Call(ctx, "Greet", "")
	wantCode(t, err, codes.InvalidArgument, "empty name")
	_, err = c.Call(ctx, "Fail", uint32(codes.NotFound), "no such table")
	wantCode(t, err, codes.NotFound, "wrapped: rpc error: code = NotFound desc = no such table")
	_, err = c.Call(ctx, "Fail", uint32(codes.ResourceExhausted), "full")
	wantCode(t, err, codes.ResourceExhausted, "full")
	_, err = c.Call(ctx, "Fail", uint32(0), "plain")
	wantCode(t, err, codes.Unknown, "plain")

	_, err = c.Call(ctx, "NoSuchMethod")
	wantCode(t, err, codes.Unimplemented, `unknown method "NoSuchMethod"`)
	_, err = c.Call(ctx, "Add", 1)
	wantCode(t, err, codes.InvalidArgument, "Add called with (int64), want (int64, int64)")
	_, err = c.Call(ctx, "Add", "1", 2)
	wantCode(t, err, codes.InvalidArgument, "Add called with (string, int64)")
	_, err = c.Call(ctx, "Add", int32(1), 2)
	wantCode(t, err, codes.InvalidArgument, "(int32, int64)")
	_, err = c.Call(ctx, "Greet", nil)
	wantCode(t, err, codes.InvalidArgument, "Greet called with (nil)")
	_, err = c.Call(ctx, "Add", make(chan int), 2)
	wantCode(t, err, codes.InvalidArgument, "argument 1: unsupported type chan int")
	_, err = c.Call(ctx, "Scale", tensor.Tensor{DType: tensor.Float32, Shape: []int{3}}, float32(1))
	wantCode(t, err, codes.InvalidArgument, "argument 1")
}

func TestPanicBecomesInternal(t *testing.T) {
	ctx := context.Background()
	_, c := setup(t, courier.WithLogger(discardLogger()))
	_, err := c.Call(ctx, "Panic", "kaboom")
	wantCode(t, err, codes.Internal, "method Panic panicked: kaboom")
	// The server goes on serving.
	n, err := courier.CallT[int](ctx, c, "Add", 1, 2)
	if err != nil || n != 3 {
		t.Fatalf("Add after panic = %v, %v", n, err)
	}
}

func TestDeadlines(t *testing.T) {
	svc, c := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, "Sleep", time.Minute)
	wantCode(t, err, codes.DeadlineExceeded, "")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("deadline took %v", d)
	}

	// WithCallTimeout bounds calls whose context has no deadline.
	_, addr := serve(t, newService())
	tc := dial(t, addr, courier.WithCallTimeout(50*time.Millisecond))
	_, err = tc.Call(context.Background(), "Sleep", time.Minute)
	wantCode(t, err, codes.DeadlineExceeded, "")
	if _, err := tc.Call(context.Background(), "Sleep", time.Millisecond); err != nil {
		t.Fatalf("short call under the timeout: %v", err)
	}

	// A method returning its context's error maps it to a code.
	cctx, ccancel := context.WithCancel(context.Background())
	f := c.Go(cctx, "Nap", "cancelled", time.Minute)
	<-svc.started
	ccancel()
	_, err = f.Result(context.Background())
	wantCode(t, err, codes.Canceled, "")
	// So does one returning a context error of its own (the caller's
	// context is live: the code comes from the server).
	_, err = c.Call(context.Background(), "CtxErr", false)
	wantCode(t, err, codes.Canceled, "wrapped: context canceled")
	_, err = c.Call(context.Background(), "CtxErr", true)
	wantCode(t, err, codes.DeadlineExceeded, "wrapped: context deadline exceeded")
}

func TestFuturesFanOut(t *testing.T) {
	ctx := context.Background()
	_, c := setup(t)
	const n = 100
	futures := make([]*courier.Future[int], n)
	for i := range futures {
		futures[i] = courier.GoT[int](ctx, c, "Add", i, 1000)
	}
	untyped := c.Go(ctx, "Greet", "future")
	for i, f := range futures {
		<-f.Done()
		got, err := f.Result(ctx)
		if err != nil || got != i+1000 {
			t.Fatalf("future %d = %v, %v", i, got, err)
		}
	}
	if v, err := untyped.Result(ctx); err != nil || v != "hello, future" {
		t.Fatalf("untyped future = %#v, %v", v, err)
	}
}

func TestFutureCancelCancelsServerContext(t *testing.T) {
	svc, c := setup(t)
	f := c.Go(context.Background(), "Block", "f1")
	select {
	case id := <-svc.started:
		if id != "f1" {
			t.Fatalf("started %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Block never started")
	}
	f.Cancel()
	select {
	case id := <-svc.cancelled:
		if id != "f1" {
			t.Fatalf("cancelled %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server-side context was not cancelled")
	}
	_, err := f.Result(context.Background())
	wantCode(t, err, codes.Canceled, "")
	f.Cancel() // idempotent

	// Result's own context does not cancel the call.
	f2 := courier.GoT[int](context.Background(), c, "Add", 1, 2)
	rctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f2.Result(rctx); status.Code(err) != codes.Canceled {
		t.Fatalf("Result with a done context: %v", err)
	}
	if n, err := f2.Result(context.Background()); err != nil || n != 3 {
		t.Fatalf("Result = %v, %v", n, err)
	}
}

func TestWaitForReady(t *testing.T) {
	// Reserve an address, then free it so nothing listens yet.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := courier.GoT[int](ctx, c, "Add", 20, 22)

	// Without wait-for-ready a call fails at once.
	nc := dial(t, addr, courier.WithWaitForReady(false))
	_, err = nc.Call(ctx, "Add", 1, 2)
	wantCode(t, err, codes.Unavailable, "")

	time.Sleep(200 * time.Millisecond)
	select {
	case <-f.Done():
		t.Fatal("the call finished before the server started")
	default:
	}
	srv, err := courier.NewServer(newService())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if _, err := srv.Listen(addr); err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	n, err := f.Result(ctx)
	if err != nil || n != 42 {
		t.Fatalf("call made before the server started = %v, %v", n, err)
	}
}

func TestRegistrationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  any
		opts []courier.ServerOption
		want string
	}{
		{"nil", nil, nil, "nil object"},
		{"chan param", &badChan{}, nil, "method Feed: parameter 2: unsupported type chan int: channels are not supported"},
		{"any result", &badAny{}, nil, "method Get: result: unsupported type interface {}: interfaces"},
		{"three results", &badResults{}, nil, "method Pair: results (int, int, error) are not supported"},
		{"late ctx", &badCtx{}, nil, "method Do: parameter 2: unsupported type context.Context: a context is only allowed"},
		{"nested func", &badField{}, nil, "method Put: parameter 1: unsupported type courier_test.withFunc: field F (func()): functions"},
		{"unknown exclusion", newService(), []courier.ServerOption{courier.WithoutMethods("Nope")}, "no exported method Nope"},
		{"bad batch method", newService(), []courier.ServerOption{courier.WithBatching("X", "Add", 4, 0)}, "parameter 1 of Add is int, not a slice"},
		{"missing batch method", newService(), []courier.ServerOption{courier.WithBatching("X", "Nope", 4, 0)}, "no exported method Nope"},
		{"batch size", &batchService{}, []courier.ServerOption{courier.WithBatching("Double", "DoubleBatch", 0, 0)}, "batch size 0"},
		{"batch mismatch", &batchService{}, []courier.ServerOption{courier.WithBatching("Wrong", "DoubleBatch", 4, 0)},
			"method Wrong has signature Wrong(string) int64, want Wrong(int64, string) string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := courier.NewServer(tc.obj, tc.opts...)
			if err == nil {
				srv.Stop()
				t.Fatal("NewServer succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Excluding the bad method makes the object servable.
	srv, err := courier.NewServer(&badChan{}, courier.WithoutMethods("Feed"))
	if err != nil {
		t.Fatal(err)
	}
	if ms := srv.Methods(); len(ms) != 1 || ms[0].Name != "OK" {
		t.Fatalf("methods = %v", ms)
	}
	srv.Stop()
}

type badChan struct{}

func (badChan) Feed(n int, c chan int) {}
func (badChan) OK()                    {}

type badAny struct{}

func (badAny) Get() any { return nil }

type badResults struct{}

func (badResults) Pair() (int, int, error) { return 0, 0, nil }

type badCtx struct{}

func (badCtx) Do(n int, ctx context.Context) {}

type withFunc struct {
	N int
	F func()
}

type badField struct{}

func (badField) Put(withFunc) {}

// batchService doubles numbers in batches and records the batch sizes.
type batchService struct {
	mu    sync.Mutex
	sizes []int
	gate  chan struct{} // if set, each batch waits for it
	// entered, if set, is sent each batch's size (if it has room) as the
	// batch starts, before it waits for the gate.
	entered chan int
}

func (b *batchService) DoubleBatch(ctx context.Context, xs []int64, tags []string) ([]string, error) {
	select {
	case b.entered <- len(xs):
	default:
	}
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b.mu.Lock()
	b.sizes = append(b.sizes, len(xs))
	b.mu.Unlock()
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%s=%d", tags[i], 2*x)
	}
	return out, nil
}

func (b *batchService) Wrong(s string) int64 { return 0 }

func (b *batchService) PanicBatch(xs []int64) []int64 { panic("batch exploded") }

func (b *batchService) ShortBatch(xs []int64) []int64 { return xs[:len(xs)-1] }

func TestBatching(t *testing.T) {
	bs := &batchService{}
	srv, addr := serve(t, bs, courier.WithBatching("Double", "DoubleBatch", 8, 100*time.Millisecond))
	c := dial(t, addr)
	if ms := srv.Methods(); !slices.ContainsFunc(ms, func(m courier.MethodInfo) bool {
		return m.Name == "Double" && m.Batched && m.String() == "Double(int64, string) string"
	}) {
		t.Fatalf("methods = %v", ms)
	}

	const callers = 64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			tag := fmt.Sprintf("c%d", i)
			got, err := courier.CallT[string](context.Background(), c, "Double", int64(i), tag)
			if err != nil {
				errs <- err
				return
			}
			if want := fmt.Sprintf("%s=%d", tag, 2*i); got != want {
				errs <- fmt.Errorf("caller %d got %q, want %q", i, got, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	total, largest := 0, 0
	for _, n := range bs.sizes {
		total += n
		largest = max(largest, n)
		if n > 8 {
			t.Errorf("batch of %d exceeds the size 8", n)
		}
	}
	if total != callers || largest < 2 {
		t.Fatalf("batch sizes %v: total %d (want %d), largest %d (want > 1)", bs.sizes, total, callers, largest)
	}
	t.Logf("batch sizes: %v", bs.sizes)
}

func TestBatchingCallerCancellation(t *testing.T) {
	bs := &batchService{gate: make(chan struct{}), entered: make(chan int, 8)}
	var calls callCounter
	_, addr := serve(t, bs, courier.WithBatching("Double", "DoubleBatch", 4, 10*time.Millisecond),
		courier.WithGRPCServerOptions(grpc.ChainUnaryInterceptor(calls.intercept)))
	c := dial(t, addr)

	// The first batch blocks on the gate; later callers queue behind it.
	first := courier.GoT[string](context.Background(), c, "Double", int64(1), "a")
	if n := <-bs.entered; n != 1 {
		t.Fatalf("first batch has %d calls, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	queued := make([]*courier.Future[string], 10)
	for i := range queued {
		queued[i] = courier.GoT[string](ctx, c, "Double", int64(i), "q")
	}
	calls.waitFor(t, 1+len(queued)) // every queued call reached the server
	cancel()
	for _, f := range queued {
		select {
		case <-f.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a cancelled caller is still waiting")
		}
		_, err := f.Result(context.Background())
		wantCode(t, err, codes.Canceled, "")
	}
	// The client gives up at once; the server learns of it when the stream
	// reset arrives. Wait until every cancelled call has left the server
	// before the gatherer runs again.
	calls.waitFor(t, 1)
	close(bs.gate)
	if got, err := first.Result(context.Background()); err != nil || got != "a=2" {
		t.Fatalf("first = %q, %v", got, err)
	}
	// Cancelled callers were left out of later batches.
	if got, err := courier.CallT[string](context.Background(), c, "Double", int64(5), "z"); err != nil || got != "z=10" {
		t.Fatalf("after cancellation: %q, %v", got, err)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if total := sumInts(bs.sizes); total != 2 {
		t.Fatalf("batches %v ran %d calls, want 2", bs.sizes, total)
	}
}

// callCounter counts the unary RPCs a server is handling.
type callCounter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed and replaced when n changes
}

func (c *callCounter) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

func (c *callCounter) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c.add(1)
	defer c.add(-1)
	return h(ctx, req)
}

// waitFor waits until the server is handling exactly n calls.
func (c *callCounter) waitFor(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := c.n
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("server handling %d calls after 10s, want %d", got, n)
		}
	}
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func TestBatchingErrors(t *testing.T) {
	bs := &batchService{}
	_, addr := serve(t, bs,
		courier.WithLogger(discardLogger()),
		courier.WithBatching("Exploding", "PanicBatch", 4, 0),
		courier.WithBatching("Short", "ShortBatch", 4, 20*time.Millisecond))
	c := dial(t, addr)
	_, err := c.Call(context.Background(), "Exploding", int64(1))
	wantCode(t, err, codes.Internal, "PanicBatch panicked: batch exploded")
	_, err = c.Call(context.Background(), "Short", int64(1))
	wantCode(t, err, codes.Internal, "returned 0 results for a batch of 1")
}

func TestStopReleasesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	svc := newService()
	bs := &batchService{}
	srv, err := courier.NewServer(svc)
	if err != nil {
		t.Fatal(err)
	}
	bsrv, err := courier.NewServer(bs, courier.WithBatching("Double", "DoubleBatch", 4, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := bsrv.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := courier.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := courier.Dial(context.Background(), baddr)
	if err != nil {
		t.Fatal(err)
	}
	// Leave calls in flight: a blocked method, a batch still gathering.
	blocked := c.Go(context.Background(), "Block", "stop")
	<-svc.started
	gathering := bc.Go(context.Background(), "Double", int64(1), "x")
	time.Sleep(50 * time.Millisecond)

	srv.Stop()
	bsrv.Stop()
	for _, f := range []*courier.Future[any]{blocked, gathering} {
		if _, err := f.Result(context.Background()); err == nil {
			t.Error("a call in flight succeeded across Stop")
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything after Stop/Close fails cleanly.
	if _, err := srv.Listen(""); err == nil {
		t.Error("Listen after Stop succeeded")
	}
	if _, err := c.Go(context.Background(), "Add", 1, 2).Result(context.Background()); status.Code(err) != codes.Canceled {
		t.Errorf("future after Close: %v", err)
	}
	srv.Stop() // idempotent
}

func TestClientCloseEndsFutures(t *testing.T) {
	svc, c := setup(t)
	f := c.Go(context.Background(), "Block", "close")
	<-svc.started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Done():
	default:
		t.Fatal("Close returned before the future's goroutine ended")
	}
	_, err := f.Result(context.Background())
	wantCode(t, err, codes.Canceled, "")
}

func TestGracefulStopWaitsForCalls(t *testing.T) {
	svc := newService()
	srv, addr := serve(t, svc)
	c := dial(t, addr)
	f := c.Go(context.Background(), "Nap", "graceful", 200*time.Millisecond)
	<-svc.started
	srv.GracefulStop()
	if _, err := f.Result(context.Background()); err != nil {
		t.Fatalf("call in flight during GracefulStop: %v", err)
	}
}

func TestHealthService(t *testing.T) {
	srv, addr := serve(t, newService())
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: courier.ServiceName})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if got := check(); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status = %v", got)
	}
	srv.SetServing(false)
	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("status after SetServing(false) = %v", got)
	}
}

func TestServeOnListener(t *testing.T) {
	srv, err := courier.NewServer(newService())
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	c := dial(t, lis.Addr().String())
	if n, err := courier.CallT[int](context.Background(), c, "Add", 1, 1); err != nil || n != 2 {
		t.Fatalf("Add = %v, %v", n, err)
	}
	srv.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v after Stop", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
