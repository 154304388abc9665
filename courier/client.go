package courier

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// connectBackoff retries connections faster than gRPC's default (1s base),
// since courier peers are usually local programs starting at the same time.
var connectBackoff = backoff.Config{
	BaseDelay:  50 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   2 * time.Second,
}

// Client calls the methods of a courier Server. Create it with Dial and
// release it with Close. Its methods are safe for concurrent use.
type Client struct {
	addr string
	conn *grpc.ClientConn
	opts clientOptions

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	// wg counts the futures' goroutines.
	wg sync.WaitGroup
}

// Dial returns a client of the server at addr ("host:port", or any gRPC
// target such as "unix:///path" or "dns:///host:port"). It does not wait for
// the server: it starts connecting in the background and, with wait-for-ready
// on (the default), calls block until the server serves. ctx bounds Dial
// itself only; it is not kept.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	o := defaultClientOptions()
	for _, opt := range opts {
		opt.applyClient(&o)
	}
	if o.maxMsgSize <= 0 {
		return nil, fmt.Errorf("courier: Dial: max message size %d is not positive", o.maxMsgSize)
	}
	if o.callTimeout < 0 {
		return nil, fmt.Errorf("courier: Dial: negative call timeout %v", o.callTimeout)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(rawCodec{}),
			grpc.WaitForReady(o.waitForReady),
			grpc.MaxCallRecvMsgSize(o.maxMsgSize),
			grpc.MaxCallSendMsgSize(o.maxMsgSize),
		),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: connectBackoff, MinConnectTimeout: 20 * time.Second}),
	}
	target := addr
	if !strings.Contains(addr, ":///") && !strings.HasPrefix(addr, "unix:") {
		target = "passthrough:///" + addr
	}
	conn, err := grpc.NewClient(target, append(dopts, o.dialOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("courier: Dial %s: %w", addr, err)
	}
	conn.Connect()
	return &Client{addr: addr, conn: conn, opts: o}, nil
}

// Addr returns the address the client was dialled with.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection, which fails the calls in flight with
// codes.Canceled, and waits for the futures' goroutines to end. Calls made
// after Close fail.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.conn.Close()
	c.wg.Wait()
	return err
}

var errClientClosed = status.Error(codes.Canceled, "courier: client is closed")

// invoke sends one Call and returns the raw response.
func (c *Client) invoke(ctx context.Context, method string, args []any) ([]byte, error) {
	req, err := encodeRequest(method, args)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return c.rpc(ctx, callMethod, req)
}

// rpc makes one unary RPC, bounded by the call timeout, and returns the raw
// response.
func (c *Client) rpc(ctx context.Context, fullMethod string, req any) ([]byte, error) {
	if c.opts.callTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.callTimeout)
		defer cancel()
	}
	var resp []byte
	if err := c.conn.Invoke(ctx, fullMethod, req, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// Call calls method with args and returns its result, or nil for a method
// without one. The result is decoded from the type descriptor the server
// sends with it, into the Go types listed in the package documentation (ints
// arrive as int64, structs as unnamed struct types with the same fields);
// use CallT to decode into a type of your own.
//
// Errors are gRPC status errors (status.Code gives the code): the method's
// own status code, Unknown for its plain errors, InvalidArgument for
// arguments that do not match the method, Unimplemented for an unknown
// method, Internal for a panic, and DeadlineExceeded or Canceled when ctx
// ends.
func (c *Client) Call(ctx context.Context, method string, args ...any) (any, error) {
	resp, err := c.invoke(ctx, method, args)
	if err != nil {
		return nil, err
	}
	return decodeAny(method, resp)
}

// CallT calls method with args and decodes its result into an R. R must be
// wire compatible with the method's result type (see the package
// documentation); if R is an interface type the result is decoded as Call
// does and converted.
func CallT[R any](ctx context.Context, c *Client, method string, args ...any) (R, error) {
	resp, err := c.invoke(ctx, method, args)
	if err != nil {
		var zero R
		return zero, err
	}
	return decodeResult[R](method, resp)
}

// readResponse splits a response into its result descriptor and value.
func readResponse(method string, resp []byte) (desc, value []byte, err error) {
	d := decoder{buf: resp}
	desc, err = d.rawString()
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "courier: %s: bad response: %v", method, err)
	}
	return desc, resp[d.off:], nil
}

func decodeAny(method string, resp []byte) (any, error) {
	desc, data, err := readResponse(method, resp)
	if err != nil || len(desc) == 0 {
		return nil, err
	}
	tc, err := codecForDesc(string(desc))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "courier: %s: bad result type: %v", method, err)
	}
	v, err := decodeValue(tc, data)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "courier: %s: %v", method, err)
	}
	return v.Interface(), nil
}

func decodeResult[R any](method string, resp []byte) (R, error) {
	var zero R
	t := reflect.TypeFor[R]()
	if t.Kind() == reflect.Interface {
		v, err := decodeAny(method, resp)
		if err != nil || v == nil {
			return zero, err
		}
		r, ok := v.(R)
		if !ok {
			return zero, status.Errorf(codes.InvalidArgument, "courier: %s returned %T, which is not a %s", method, v, t)
		}
		return r, nil
	}
	tc, err := codecFor(t)
	if err != nil {
		return zero, status.Errorf(codes.InvalidArgument, "courier: %s: result: %v", method, err)
	}
	desc, data, err := readResponse(method, resp)
	if err != nil {
		return zero, err
	}
	if len(desc) == 0 {
		return zero, status.Errorf(codes.InvalidArgument, "courier: %s returns no result, cannot decode a %s", method, t)
	}
	if string(desc) != tc.desc && compatible(tc, string(desc)) != nil {
		return zero, status.Errorf(codes.InvalidArgument, "courier: %s returns %s, cannot decode it into %s", method, desc, t)
	}
	var r R
	d := decoder{buf: data}
	if err := tc.dec(&d, reflect.ValueOf(&r).Elem()); err != nil {
		return zero, status.Errorf(codes.Internal, "courier: %s: %v", method, err)
	}
	if d.remaining() != 0 {
		return zero, status.Errorf(codes.Internal, "courier: %s: %d trailing bytes after the result", method, d.remaining())
	}
	return r, nil
}

// Methods asks the server for the methods it serves.
func (c *Client) Methods(ctx context.Context) ([]MethodInfo, error) {
	resp, err := c.rpc(ctx, listMethodsMethod, []byte(nil))
	if err != nil {
		return nil, err
	}
	return decodeResult[[]MethodInfo]("ListMethods", resp)
}

// Future is the pending result of a call started with Client.Go or GoT.
type Future[R any] struct {
	done   chan struct{}
	cancel context.CancelFunc
	val    R
	err    error
}

// Go starts a call of method and returns its future at once. The call runs
// in a goroutine the client owns; ctx bounds it like a Call's context. The
// result is decoded as Call does.
func (c *Client) Go(ctx context.Context, method string, args ...any) *Future[any] {
	return GoT[any](ctx, c, method, args...)
}

// GoT is Go with the result decoded into an R, as CallT does.
func GoT[R any](ctx context.Context, c *Client, method string, args ...any) *Future[R] {
	f := &Future[R]{done: make(chan struct{})}
	ctx, f.cancel = context.WithCancel(ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f.cancel()
		f.err = errClientClosed
		close(f.done)
		return f
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go f.run(ctx, c, method, args)
	return f
}

func (f *Future[R]) run(ctx context.Context, c *Client, method string, args []any) {
	defer c.wg.Done()
	defer f.cancel()
	f.val, f.err = CallT[R](ctx, c, method, args...)
	close(f.done)
}

// Done returns a channel closed when the call has finished.
func (f *Future[R]) Done() <-chan struct{} { return f.done }

// Cancel cancels the call: its RPC ends and the server-side context of the
// method is cancelled. Result then returns codes.Canceled unless the call
// had already finished. Cancel may be called any number of times.
func (f *Future[R]) Cancel() { f.cancel() }

// Result waits for the call to finish and returns its result. If ctx ends
// first, Result returns ctx's error as a status error and the call goes on.
func (f *Future[R]) Result(ctx context.Context) (R, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero R
		return zero, status.FromContextError(ctx.Err()).Err()
	}
}
