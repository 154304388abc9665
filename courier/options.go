package courier

import (
	"crypto/tls"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc"
)

// DefaultMaxMessageSize is the default limit, in bytes, on messages sent and
// received by clients and servers. It matches Launchpad's courier (INT32_MAX)
// so that large parameter sets fit; lower it with WithMaxMessageSize when
// peers are not trusted.
const DefaultMaxMessageSize = math.MaxInt32

// Option configures a Client. Options are applied in order by Dial.
type Option interface {
	applyClient(*clientOptions)
}

// ServerOption configures a Server. Options are applied in order by
// NewServer.
type ServerOption interface {
	applyServer(*serverOptions)
}

// CommonOption is an option that applies to both Dial and NewServer.
type CommonOption interface {
	Option
	ServerOption
}

type clientOptions struct {
	callTimeout  time.Duration
	waitForReady bool
	maxMsgSize   int
	tls          *tls.Config
	dialOpts     []grpc.DialOption
}

func defaultClientOptions() clientOptions {
	return clientOptions{waitForReady: true, maxMsgSize: DefaultMaxMessageSize}
}

type serverOptions struct {
	maxMsgSize int
	tls        *tls.Config
	exclude    map[string]bool
	batching   []batchSpec
	logger     *slog.Logger
	grpcOpts   []grpc.ServerOption
}

func defaultServerOptions() serverOptions {
	return serverOptions{maxMsgSize: DefaultMaxMessageSize, exclude: map[string]bool{}}
}

type clientOptionFunc func(*clientOptions)

func (f clientOptionFunc) applyClient(o *clientOptions) { f(o) }

type serverOptionFunc func(*serverOptions)

func (f serverOptionFunc) applyServer(o *serverOptions) { f(o) }

type commonOption struct {
	client func(*clientOptions)
	server func(*serverOptions)
}

func (c commonOption) applyClient(o *clientOptions) { c.client(o) }
func (c commonOption) applyServer(o *serverOptions) { c.server(o) }

// WithCallTimeout bounds every call made by the client to d, on top of any
// deadline of the call's context (the earlier one wins). Zero, the default,
// means no bound beyond the context.
func WithCallTimeout(d time.Duration) Option {
	return clientOptionFunc(func(o *clientOptions) { o.callTimeout = d })
}

// WithWaitForReady sets whether calls wait for the server to become
// reachable (true, the default: calls made while the server is starting block
// until it serves, or until their context ends) or fail at once with
// codes.Unavailable when it is not (false).
func WithWaitForReady(wait bool) Option {
	return clientOptionFunc(func(o *clientOptions) { o.waitForReady = wait })
}

// WithGRPCDialOptions appends raw gRPC dial options, applied after courier's
// own, for example interceptors or a custom dialer.
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return clientOptionFunc(func(o *clientOptions) { o.dialOpts = append(o.dialOpts, opts...) })
}

// WithMaxMessageSize limits the size in bytes of messages sent and received.
// The default is DefaultMaxMessageSize.
func WithMaxMessageSize(n int) CommonOption {
	return commonOption{
		client: func(o *clientOptions) { o.maxMsgSize = n },
		server: func(o *serverOptions) { o.maxMsgSize = n },
	}
}

// WithTLS enables TLS with cfg: for a server, cfg must hold its
// certificate; for a client, cfg says which servers to trust. TLS is off by
// default (courier binds to loopback by default).
func WithTLS(cfg *tls.Config) CommonOption {
	return commonOption{
		client: func(o *clientOptions) { o.tls = cfg },
		server: func(o *serverOptions) { o.tls = cfg },
	}
}

// WithoutMethods keeps the named methods of the served object from becoming
// RPCs, for example a Run method or helpers whose types cannot be encoded.
func WithoutMethods(names ...string) ServerOption {
	return serverOptionFunc(func(o *serverOptions) {
		for _, n := range names {
			o.exclude[n] = true
		}
	})
}

// WithLogger sets the logger for handler panics and serving errors. The
// default is slog.Default().
func WithLogger(l *slog.Logger) ServerOption {
	return serverOptionFunc(func(o *serverOptions) { o.logger = l })
}

// WithGRPCServerOptions appends raw gRPC server options, applied after
// courier's own, for example interceptors or keepalive settings.
func WithGRPCServerOptions(opts ...grpc.ServerOption) ServerOption {
	return serverOptionFunc(func(o *serverOptions) { o.grpcOpts = append(o.grpcOpts, opts...) })
}

// WithBatching serves method by batching: concurrent calls to method are
// gathered, up to size calls or until timeout has passed since the first
// one, and handed to one call of batchMethod, whose results are split back to
// the callers.
//
// batchMethod must be an exported method of the served object of the form
//
//	func (T) BatchM([ctx context.Context,] xs []A, ys []B, ...) ([]R, error)
//
// (the result and the error are each optional): one slice parameter per
// argument of method, each holding the batch's arguments in the same order,
// and a result slice of the same length. Callers call method with arguments
// (A, B, ...) and get an R. If the object also has a method called method,
// its signature must match; the batched version replaces it as an RPC.
//
// Batches run one at a time, in a goroutine the Server owns. A batch's
// context is cancelled when every caller in it has gone or the server stops.
// Callers whose context ends while they wait return at once and are left out
// of batches not yet started. An error or panic from batchMethod is returned
// to every caller of the batch. With timeout 0, a batch holds the calls
// already waiting, without waiting for more.
func WithBatching(method, batchMethod string, size int, timeout time.Duration) ServerOption {
	return serverOptionFunc(func(o *serverOptions) {
		o.batching = append(o.batching, batchSpec{method: method, batchMethod: batchMethod, size: size, timeout: timeout})
	})
}
