// Command hello_world is the smallest program: one function node that
// prints a greeting. Run it in-process or as a child process:
//
//	go run ./examples/hello_world
//	go run ./examples/hello_world --lp_launch_type=local_mp
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// greet is the node's function. Its context tells it who it is.
func greet(ctx context.Context, greeting string) {
	id, _ := program.NodeFromContext(ctx)
	fmt.Printf("%s (from node %s)\n", greeting, id)
}

// BuildProgram returns the program: a single function node.
func BuildProgram(greeting string) *program.Program {
	p := program.New("hello_world")
	program.AddNode(p, "hello", program.NewFuncNode(greet, greeting))
	return p
}

func main() {
	launch.RegisterFlags(flag.CommandLine)
	greeting := flag.String("greeting", "Hello World!", "what to print")
	flag.Parse()

	if err := launch.Launch(context.Background(), BuildProgram(*greeting)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
