package replay

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/recall-rl/recall/replay/internal/wire"
)

// Option configures a Client (see Dial).
type Option interface{ apply(*clientOptions) }

type optionFunc func(*clientOptions)

func (f optionFunc) apply(o *clientOptions) { f(o) }

type clientOptions struct {
	tls             *tls.Config
	token           string
	maxMessageBytes int
	callTimeout     time.Duration
	lazy            bool
}

// WithTLS connects with TLS using cfg.
func WithTLS(cfg *tls.Config) Option { return optionFunc(func(o *clientOptions) { o.tls = cfg }) }

// WithAuthToken sends token as "authorization: Bearer TOKEN" on every call.
func WithAuthToken(token string) Option {
	return optionFunc(func(o *clientOptions) { o.token = token })
}

// WithMaxMessageBytes caps sent and received messages (default 64 MiB).
func WithMaxMessageBytes(n int) Option {
	return optionFunc(func(o *clientOptions) { o.maxMessageBytes = n })
}

// WithCallTimeout bounds unary calls (ServerInfo, MutatePriorities, Reset,
// Checkpoint) whose context has no deadline. Default 30s; 0 disables.
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(o *clientOptions) { o.callTimeout = d })
}

// WithLazyConnect makes Dial return at once instead of waiting for the
// connection to be ready; the first call connects.
func WithLazyConnect() Option { return optionFunc(func(o *clientOptions) { o.lazy = true }) }

// Client talks to a replay server. It is safe for concurrent use; writers
// and samplers made from it share its connection.
type Client struct {
	conn *grpc.ClientConn
	rpc  wire.ReplayServiceClient
	opts clientOptions
	addr string
}

// Dial connects to the replay server at addr ("host:port"). Unless
// WithLazyConnect is given it waits until the connection is ready and
// fails with ErrUnavailable if ctx ends first.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	o := clientOptions{maxMessageBytes: DefaultMaxMessageBytes, callTimeout: 30 * time.Second}
	for _, opt := range opts {
		opt.apply(&o)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(codec{}),
			grpc.MaxCallRecvMsgSize(o.maxMessageBytes),
			grpc.MaxCallSendMsgSize(o.maxMessageBytes),
		),
		grpc.WithInitialWindowSize(4 << 20),
		grpc.WithInitialConnWindowSize(16 << 20),
		grpc.WithReadBufferSize(256 << 10),
		grpc.WithWriteBufferSize(256 << 10),
	}
	if o.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(tokenCreds{token: o.token, secure: o.tls != nil}))
	}
	conn, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %v", ErrInvalidArgument, addr, err)
	}
	c := &Client{conn: conn, rpc: wire.NewReplayServiceClient(conn), opts: o, addr: addr}
	if !o.lazy {
		if err := c.waitReady(ctx); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) waitReady(ctx context.Context) error {
	c.conn.Connect()
	for {
		st := c.conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return fmt.Errorf("%w: connection to %s closed", ErrClosed, c.addr)
		}
		if !c.conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("%w: %s not reachable (last state %s): %w", ErrUnavailable, c.addr, st, ctx.Err())
		}
	}
}

// Addr returns the address the client dialled.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection; streams using it end.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.opts.callTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.callTimeout)
}

// ServerInfo returns the server's tables and their state.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.rpc.ServerInfo(ctx, emptyMessage(wire.ServerInfoRequestStart, wire.ServerInfoRequestEnd))
	if err != nil {
		return ServerInfo{}, fromStatus(err)
	}
	si, err := parseServerInfo(messageBytes(resp))
	if err != nil {
		return ServerInfo{}, fmt.Errorf("replay: server info: %w", err)
	}
	return si, nil
}

// MutatePriorities deletes the items with the given keys from table, then
// sets new priorities. Unknown keys are ignored; an invalid priority fails
// the whole call with ErrInvalidArgument and changes nothing.
func (c *Client) MutatePriorities(ctx context.Context, table string, updates map[uint64]float64, deletes []uint64) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	_, err := c.rpc.MutatePriorities(ctx, buildMutateRequest(table, updates, deletes))
	return fromStatus(err)
}

// Reset removes every item of table and zeroes its counters.
func (c *Client) Reset(ctx context.Context, table string) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	_, err := c.rpc.Reset(ctx, buildResetRequest(table))
	return fromStatus(err)
}

// Checkpoint asks the server to write a checkpoint and returns its path.
func (c *Client) Checkpoint(ctx context.Context) (string, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.rpc.Checkpoint(ctx, emptyMessage(wire.CheckpointRequestStart, wire.CheckpointRequestEnd))
	if err != nil {
		return "", fromStatus(err)
	}
	path, err := parseCheckpointResponse(messageBytes(resp))
	if err != nil {
		return "", fmt.Errorf("replay: checkpoint: %w", err)
	}
	return path, nil
}

// tokenCreds sends the auth token with every call.
type tokenCreds struct {
	token  string
	secure bool
}

func (t tokenCreds) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}

func (t tokenCreds) RequireTransportSecurity() bool { return t.secure }
