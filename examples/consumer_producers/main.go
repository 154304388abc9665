// Command consumer_producers is Launchpad's consumer_producers example:
// producers, courier nodes in one group, do work; a consumer fans calls
// out to all of them as futures, gathers the results, prints them and stops
// the program.
//
//	go run ./examples/consumer_producers                             # one process
//	go run ./examples/consumer_producers --lp_launch_type=local_mp   # a process per node
//	go run ./examples/consumer_producers --num_producers=8 --lp_launch_type=local_mp
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// Producer does work on request; its exported methods are RPCs.
type Producer struct {
	id int
}

// NewProducer is the producers' constructor.
func NewProducer(ctx context.Context) *Producer {
	id, _ := program.NodeFromContext(ctx) // producer/0, producer/1, ...
	return &Producer{id: id.Index}
}

// Work returns a result for x that shows which producer computed it.
func (p *Producer) Work(ctx context.Context, x int) (int, error) {
	return 1000*p.id + x*x, nil
}

// Consumer fans work out to the producers.
type Consumer struct {
	producers []*courier.Client
}

// NewConsumer is the consumer's constructor; it gets the producers'
// handles dereferenced to clients.
func NewConsumer(producers []*courier.Client) *Consumer {
	return &Consumer{producers: producers}
}

// Gather asks every producer for Work(i) at once and returns their results
// in producer order.
func (c *Consumer) Gather(ctx context.Context) ([]int, error) {
	futures := make([]*courier.Future[int], len(c.producers))
	for i, p := range c.producers {
		futures[i] = courier.GoT[int](ctx, p, "Work", i+1)
	}
	results := make([]int, len(futures))
	for i, f := range futures {
		r, err := f.Result(ctx)
		if err != nil {
			return nil, fmt.Errorf("producer %d: %w", i, err)
		}
		results[i] = r
	}
	return results, nil
}

// Run is called when the consumer node starts: gather, print, stop the
// whole program.
func (c *Consumer) Run(ctx context.Context) error {
	results, err := c.Gather(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("Results: %v\n", results)
	return program.Stop(ctx)
}

// BuildProgram returns the program with n producers and one consumer.
func BuildProgram(n int) *program.Program {
	p := program.New("consumer_producers")
	var producers []program.Handle[*courier.Client]
	for range n {
		producers = append(producers, program.AddNode(p, "producer", program.NewCourierNode(NewProducer)))
	}
	program.AddNode(p, "consumer", program.NewCourierNode(NewConsumer, producers))
	return p
}

func main() {
	launch.RegisterFlags(flag.CommandLine)
	n := flag.Int("num_producers", 4, "number of producers")
	flag.Parse()

	if err := launch.Launch(context.Background(), BuildProgram(*n)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
