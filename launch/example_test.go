package launch_test

import (
	"context"
	"fmt"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// Squarer is served by courier nodes.
type Squarer struct{}

// Square returns x*x.
func (Squarer) Square(x int) int { return x * x }

// A program of three courier nodes and a function node that calls them
// with futures and then stops the program. Change the launch type (or run
// the binary with --lp_launch_type=local_mp) to run each node in its own
// process.
func ExampleLaunch() {
	p := program.New("squares")
	var workers []program.Handle[*courier.Client]
	for range 3 {
		workers = append(workers, program.AddNode(p, "worker", program.NewCourierNode(func() Squarer { return Squarer{} })))
	}
	program.AddNode(p, "main", program.NewFuncNode(func(ctx context.Context, ws []*courier.Client) error {
		var fs []*courier.Future[int]
		for i, w := range ws {
			fs = append(fs, courier.GoT[int](ctx, w, "Square", i+2))
		}
		for _, f := range fs {
			v, err := f.Result(ctx)
			if err != nil {
				return err
			}
			fmt.Println(v)
		}
		return program.Stop(ctx) // stop the servers too
	}, workers))

	err := launch.Launch(context.Background(), p, launch.WithLaunchType(launch.LocalMT), launch.WithArgs(nil))
	fmt.Println("err:", err)
	// Output:
	// 4
	// 9
	// 16
	// err: <nil>
}
