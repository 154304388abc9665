package courier

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/recall-rl/recall/internal/tensor"
)

// echoService is what the courier benchmarks serve.
type echoService struct{}

func (echoService) Echo(p []byte) []byte { return p }

// rawEcho is the baseline: a hand-written gRPC unary method with the same
// raw-bytes codec, echoing its request.
var rawEchoDesc = grpc.ServiceDesc{
	ServiceName: "bench.Raw",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req []byte
			if err := dec(&req); err != nil {
				return nil, err
			}
			return req, nil
		},
	}},
}

type benchTarget struct {
	name string
	call func(ctx context.Context, payload []byte) error
}

// benchTargets starts a courier server and a raw gRPC server and returns a
// caller for each.
func benchTargets(b *testing.B) ([]benchTarget, *Client) {
	srv, err := NewServer(echoService{})
	if err != nil {
		b.Fatal(err)
	}
	addr, err := srv.Listen("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	c, err := Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })

	raw := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}))
	raw.RegisterService(&rawEchoDesc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = raw.Serve(lis) })
	b.Cleanup(func() { raw.Stop(); wg.Wait() })
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.WaitForReady(true)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })

	return []benchTarget{
		{"courier", func(ctx context.Context, p []byte) error {
			out, err := CallT[[]byte](ctx, c, "Echo", p)
			if err == nil && len(out) != len(p) {
				err = fmt.Errorf("echoed %d bytes, sent %d", len(out), len(p))
			}
			return err
		}},
		{"raw", func(ctx context.Context, p []byte) error {
			var out []byte
			err := conn.Invoke(ctx, "/bench.Raw/Echo", p, &out)
			if err == nil && len(out) != len(p) {
				err = fmt.Errorf("echoed %d bytes, sent %d", len(out), len(p))
			}
			return err
		}},
	}, c
}

// BenchmarkUnary compares courier calls of Echo([]byte) []byte with raw gRPC
// unary calls of the same payload, measured in the same run.
func BenchmarkUnary(b *testing.B) {
	targets, _ := benchTargets(b)
	ctx := context.Background()
	for _, size := range []int{64, 4096} {
		payload := make([]byte, size)
		for _, callers := range []int{1, 16} {
			for _, tg := range targets {
				b.Run(fmt.Sprintf("bytes=%d/callers=%d/impl=%s", size, callers, tg.name), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(size))
					if callers == 1 {
						for b.Loop() {
							if err := tg.call(ctx, payload); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := tg.call(ctx, payload); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkUnaryPaired measures the same calls as BenchmarkUnary, but
// alternates short phases of courier and raw calls (32 calls per caller and
// phase, order swapped every phase) so that load from other processes hits
// both alike. It reports each side's call rate and their ratio; ns/op is the
// time of one pair of phases.
func BenchmarkUnaryPaired(b *testing.B) {
	targets, _ := benchTargets(b)
	ctx := context.Background()
	for _, size := range []int{64, 4096} {
		payload := make([]byte, size)
		for _, callers := range []int{1, 16} {
			b.Run(fmt.Sprintf("bytes=%d/callers=%d", size, callers), func(b *testing.B) {
				const perCaller = 32
				var elapsed [2]time.Duration
				phase := func(tg benchTarget) time.Duration {
					start := time.Now()
					var wg sync.WaitGroup
					for range callers {
						wg.Go(func() {
							for range perCaller {
								if err := tg.call(ctx, payload); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					return time.Since(start)
				}
				i := 0
				for b.Loop() {
					first := i % 2
					elapsed[first] += phase(targets[first])
					elapsed[1-first] += phase(targets[1-first])
					i++
				}
				calls := float64(i * callers * perCaller)
				courierRate := calls / elapsed[0].Seconds()
				rawRate := calls / elapsed[1].Seconds()
				b.ReportMetric(courierRate, "courier-calls/s")
				b.ReportMetric(rawRate, "raw-calls/s")
				b.ReportMetric(courierRate/rawRate, "courier/raw")
			})
		}
	}
}

// BenchmarkFuturesFanOut starts 100 calls at once and waits for all of
// them; ns/op is per fan-out of 100 calls. The courier side uses GoT
// futures, the raw side 100 goroutines making raw calls. The paired variant
// alternates the two, as BenchmarkUnaryPaired does, and reports the ratio.
func BenchmarkFuturesFanOut(b *testing.B) {
	targets, c := benchTargets(b)
	ctx := context.Background()
	payload := make([]byte, 64)
	const fan = 100
	futures := make([]*Future[[]byte], fan)
	courierFan := func(b *testing.B) {
		for i := range futures {
			futures[i] = GoT[[]byte](ctx, c, "Echo", payload)
		}
		for _, f := range futures {
			if _, err := f.Result(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	rawFan := func(b *testing.B) {
		var wg sync.WaitGroup
		for range fan {
			wg.Go(func() {
				if err := targets[1].call(ctx, payload); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	fans := [2]func(*testing.B){courierFan, rawFan}

	for i, name := range []string{"courier", "raw"} {
		b.Run("impl="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fans[i](b)
			}
		})
	}
	b.Run("impl=paired", func(b *testing.B) {
		var elapsed [2]time.Duration
		i := 0
		for b.Loop() {
			for k := range 2 {
				side := (i + k) % 2
				start := time.Now()
				fans[side](b)
				elapsed[side] += time.Since(start)
			}
			i++
		}
		b.ReportMetric(float64(i*fan)/elapsed[0].Seconds(), "courier-calls/s")
		b.ReportMetric(float64(i*fan)/elapsed[1].Seconds(), "raw-calls/s")
		b.ReportMetric(elapsed[1].Seconds()/elapsed[0].Seconds(), "courier/raw")
	})
}

type benchObs struct {
	Step    int64
	Reward  float32
	Done    bool
	Frame   tensor.Tensor
	Actions []int32
	Info    map[string]float64
}

// BenchmarkCodec measures encoding and decoding alone.
func BenchmarkCodec(b *testing.B) {
	frame := tensor.MustFromSlice(make([]float32, 84*84*4), 84, 84, 4)
	cases := []struct {
		name string
		v    any
	}{
		{"int64", int64(42)},
		{"obs", benchObs{Step: 1, Reward: 0.5, Frame: frame, Actions: make([]int32, 16), Info: map[string]float64{"a": 1}}},
		{"float32x1M", make([]float32, 1<<20)},
		{"strings", []string{"alpha", "beta", "gamma", "delta"}},
	}
	for _, tc := range cases {
		c, err := codecFor(reflect.TypeOf(tc.v))
		if err != nil {
			b.Fatal(err)
		}
		v := reflect.ValueOf(tc.v)
		data, err := encodeValue(nil, c, v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("op=encode/type="+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, len(data))
			for b.Loop() {
				if _, err := encodeValue(buf[:0], c, v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("op=decode/type="+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := decodeValue(c, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
