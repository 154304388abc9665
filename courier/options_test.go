package courier_test

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/internal/testutil"
)

func TestTLS(t *testing.T) {
	cert := testutil.SelfSignedCert(t)
	_, addr := serve(t, newService(), courier.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS}}))
	c := dial(t, addr, courier.WithTLS(&tls.Config{RootCAs: cert.Pool}))
	if n, err := courier.CallT[int](context.Background(), c, "Add", 2, 2); err != nil || n != 4 {
		t.Fatalf("Add over TLS = %v, %v", n, err)
	}
	// A plaintext client cannot talk to the TLS server.
	plain := dial(t, addr, courier.WithWaitForReady(false))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := plain.Call(ctx, "Add", 1, 1); err == nil {
		t.Fatal("plaintext call to a TLS server succeeded")
	}
}

func TestMaxMessageSize(t *testing.T) {
	_, addr := serve(t, newService(), courier.WithMaxMessageSize(2048))
	c := dial(t, addr)
	ctx := context.Background()
	if _, err := c.Call(ctx, "Echo", make([]byte, 1024)); err != nil {
		t.Fatalf("small message: %v", err)
	}
	_, err := c.Call(ctx, "Echo", make([]byte, 4096))
	wantCode(t, err, codes.ResourceExhausted, "")

	small := dial(t, addr, courier.WithMaxMessageSize(512))
	_, err = small.Call(ctx, "Echo", make([]byte, 1024))
	wantCode(t, err, codes.ResourceExhausted, "")
}

func TestGRPCOptionsPassThrough(t *testing.T) {
	var serverSeen, clientSeen atomic.Int64
	_, addr := serve(t, newService(), courier.WithGRPCServerOptions(grpc.UnaryInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			serverSeen.Add(1)
			return next(ctx, req)
		})))
	c := dial(t, addr, courier.WithGRPCDialOptions(grpc.WithUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			clientSeen.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		})))
	if n, err := courier.CallT[int](context.Background(), c, "Add", 1, 2); err != nil || n != 3 {
		t.Fatalf("Add = %v, %v", n, err)
	}
	_, err := c.Call(context.Background(), "Greet", "")
	wantCode(t, err, codes.InvalidArgument, "empty name")
	if serverSeen.Load() != 2 || clientSeen.Load() != 2 {
		t.Fatalf("interceptors saw %d (server) and %d (client) calls, want 2", serverSeen.Load(), clientSeen.Load())
	}
}

func TestDialOptionErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := courier.Dial(ctx, "127.0.0.1:1", courier.WithMaxMessageSize(0)); err == nil {
		t.Error("Dial with max message size 0 succeeded")
	}
	if _, err := courier.Dial(ctx, "127.0.0.1:1", courier.WithCallTimeout(-time.Second)); err == nil {
		t.Error("Dial with a negative call timeout succeeded")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := courier.Dial(done, "127.0.0.1:1"); err == nil {
		t.Error("Dial with a done context succeeded")
	}
}
