// Command batching is Launchpad's batching example: a courier node serves a
// method whose concurrent calls are gathered into batches
// (courier.WithBatching, Launchpad's batched_handler), and client nodes
// call it concurrently. The last client to finish prints how the calls
// were batched and stops the program.
//
//	go run ./examples/batching
//	go run ./examples/batching --lp_launch_type=local_mp --num_clients=4
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// Server doubles numbers, a batch at a time.
type Server struct {
	mu      sync.Mutex
	batches []int // size of every batch run
}

// NewServer is the server's constructor.
func NewServer() *Server { return &Server{} }

// ComputeBatch runs one batch: it is what Compute calls become.
func (s *Server) ComputeBatch(xs []float64) []float64 {
	s.mu.Lock()
	s.batches = append(s.batches, len(xs))
	s.mu.Unlock()
	ys := make([]float64, len(xs))
	for i, x := range xs {
		ys[i] = 2 * x
	}
	return ys
}

// BatchStats describes the batches run so far.
type BatchStats struct {
	Batches, Largest, Calls int
}

// Stats returns the batching statistics.
func (s *Server) Stats() BatchStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := BatchStats{Batches: len(s.batches)}
	for _, n := range s.batches {
		st.Largest = max(st.Largest, n)
		st.Calls += n
	}
	return st
}

// client is a client node's function: it makes calls concurrent calls to
// the server's Compute method, as futures, and checks the results.
func client(ctx context.Context, server *courier.Client, calls int) error {
	id, _ := program.NodeFromContext(ctx)
	futures := make([]*courier.Future[float64], calls)
	for i := range futures {
		futures[i] = courier.GoT[float64](ctx, server, "Compute", float64(i))
	}
	for i, f := range futures {
		y, err := f.Result(ctx)
		if err != nil {
			return err
		}
		if y != 2*float64(i) {
			return fmt.Errorf("Compute(%d) = %v, want %v", i, y, 2*float64(i))
		}
	}
	fmt.Printf("%s: %d calls answered\n", id, calls)
	return nil
}

// report is the reporter node's function: it waits until the server has
// answered every client's calls, prints the batching statistics and stops
// the program.
func report(ctx context.Context, server *courier.Client, want int) error {
	for {
		st, err := courier.CallT[BatchStats](ctx, server, "Stats")
		if err != nil {
			return err
		}
		if st.Calls >= want {
			fmt.Printf("%d calls in %d batches, largest %d (mean %.1f calls per batch)\n",
				st.Calls, st.Batches, st.Largest, float64(st.Calls)/float64(st.Batches))
			return program.Stop(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// BuildProgram returns the program: a batching server, clients making
// calls concurrently, and a reporter.
func BuildProgram(clients, calls, batchSize int) *program.Program {
	p := program.New("batching")
	srv := program.AddNode(p, "server", program.NewCourierNode(NewServer).WithServerOptions(
		courier.WithBatching("Compute", "ComputeBatch", batchSize, 5*time.Millisecond),
	))
	for range clients {
		program.AddNode(p, "client", program.NewFuncNode(client, srv, calls))
	}
	program.AddNode(p, "reporter", program.NewFuncNode(report, srv, clients*calls))
	return p
}

func main() {
	launch.RegisterFlags(flag.CommandLine)
	clients := flag.Int("num_clients", 2, "number of client nodes")
	calls := flag.Int("calls", 256, "concurrent calls per client")
	batchSize := flag.Int("batch_size", 64, "largest batch")
	flag.Parse()

	if err := launch.Launch(context.Background(), BuildProgram(*clients, *calls, *batchSize)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
