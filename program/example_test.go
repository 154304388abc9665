package program_test

import (
	"context"
	"fmt"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/program"
	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

// Learner is served by a courier node.
type Learner struct {
	replay *replay.Client
}

// NewLearner gets the replay node's handle dereferenced to a client.
func NewLearner(r *replay.Client) *Learner { return &Learner{replay: r} }

// Run is called when the learner node starts; the node ends when it returns.
func (l *Learner) Run(ctx context.Context) error {
	<-ctx.Done() // train until the program stops
	return nil
}

// Actor is served by courier nodes in the "actor" group.
type Actor struct{}

// NewActor builds an actor that writes to replay and reads the learner.
func NewActor(r *replay.Client, learner *courier.Client) *Actor { return &Actor{} }

// Example builds an actors–replay–learner program (launch it with package
// launch) and prints its nodes.
func Example() {
	p := program.New("agent")
	rb := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{
		Tables: []table.Options{{Name: "experience", MaxSize: 100_000}},
	}))
	learner := program.AddNode(p, "learner", program.NewCourierNode(NewLearner, rb))
	for range 3 {
		program.AddNode(p, "actor", program.NewCourierNode(NewActor, rb, learner))
	}
	if err := p.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range p.Nodes() {
		fmt.Println(n.ID, n.Kind)
	}
	// Output:
	// replay/0 replay
	// learner/0 courier
	// actor/0 courier
	// actor/1 courier
	// actor/2 courier
}

// A function node's arguments are checked when it is made: the mistake is
// reported by Validate (and Launch), not when the node runs.
func ExampleNewFuncNode() {
	p := program.New("typo")
	r := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{
		Tables: []table.Options{{Name: "t"}},
	}))
	program.AddNode(p, "user", program.NewFuncNode(func(ctx context.Context, c *courier.Client) {}, r))
	fmt.Println(p.Validate())
	// Output:
	// program: invalid program: node user/0: function func(context.Context, *courier.Client): argument 1: Handle[*replay.Client] dereferences to *replay.Client, not assignable to *courier.Client
}
