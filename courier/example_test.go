package courier_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/recall-rl/recall/courier"
)

// Counter is served over courier; its exported methods become RPCs.
type Counter struct {
	mu sync.Mutex
	n  int
}

// Add adds d and returns the new count.
func (c *Counter) Add(d int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	return c.n
}

// Get returns the count.
func (c *Counter) Get(ctx context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, nil
}

func Example() {
	ctx := context.Background()

	srv, err := courier.NewServer(&Counter{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	addr, err := srv.Listen("") // 127.0.0.1, kernel-picked port
	if err != nil {
		log.Fatal(err)
	}

	c, err := courier.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A synchronous, typed call.
	n, err := courier.CallT[int](ctx, c, "Add", 5)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after Add(5):", n)

	// Ten calls in flight at once, as futures.
	futures := make([]*courier.Future[int], 10)
	for i := range futures {
		futures[i] = courier.GoT[int](ctx, c, "Add", 1)
	}
	for _, f := range futures {
		if _, err := f.Result(ctx); err != nil {
			log.Fatal(err)
		}
	}

	// An untyped call: ints travel as int64.
	v, err := c.Call(ctx, "Get")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Get: %v (%T)\n", v, v)

	ms, err := c.Methods(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range ms {
		fmt.Println(m)
	}
	// Output:
	// after Add(5): 5
	// Get: 15 (int64)
	// Add(int64) int64
	// Get() int64
}
