// Package program describes distributed programs as graphs of nodes and
// handles, after DeepMind's Launchpad. A program is built by one
// deterministic Go function; package launch runs it in one process, one
// process per node, or under a test, chosen by a flag.
//
// # Building a program
//
//	p := program.New("agent")
//	rb := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{
//		Tables: []table.Options{{Name: "experience"}},
//	}))                                                                // Handle[*replay.Client]
//	learner := program.AddNode(p, "learner", program.NewCourierNode(NewLearner, rb)) // Handle[*courier.Client]
//	for range 4 {
//		program.AddNode(p, "actor", program.NewCourierNode(NewActor, rb, learner))
//	}
//	program.AddNode(p, "evaluator", program.NewFuncNode(evaluate, learner))
//
// AddNode returns the node's handle, typed by the client it dereferences to.
// Passing a handle to another node's function or constructor makes an edge:
// when that node runs, the parameter gets the dereferenced client. A
// []Handle[C] argument (or an array, or a map with handle values) fits a
// []C parameter, which is how a node fans out to a group.
//
// Nodes that share a label form a group, label/0, label/1, ... (Launchpad's
// `with program.group(label)`); launch settings such as restart policies
// are per label.
//
// # Node kinds
//
//   - NewFuncNode(fn, args...): runs fn with dereferenced handles (PyNode).
//   - NewCourierNode(ctor, args...): builds an object and serves its
//     exported methods with package courier (CourierNode). A Run method,
//     if any, is called on start, and the node ends when it returns;
//     otherwise the node serves until the program stops.
//   - NewReplayNode(opts): a replay server (ReverbNode); its handle
//     dereferences to a *replay.Client.
//   - NewThreadColocation(members...): members share one process, as
//     goroutines (MultiThreadingColocation).
//   - NewProcessColocation(members...): members get a process each under
//     local_mp (MultiProcessingColocation).
//
// A function's or constructor's first parameter may be a context.Context:
// it gets the node context. Arguments are checked against the parameters
// when the node is made. Mistakes found while building (a bad label, a node
// added twice, arguments that do not fit, a handle of another program) are
// recorded and returned, all together, by Validate and so by launch.Launch,
// instead of panicking.
//
// # Running nodes: addresses, contexts and stop
//
// Serving nodes bind a loopback port the kernel picks and register the
// address with the launcher before they are constructed; handles resolve
// lazily, waiting for the registration, so nodes may start in any order and
// cyclic graphs do not deadlock. No port is chosen in advance.
//
// The node context is given to node functions, constructors and Run
// methods, and courier RPC methods' contexts carry the node too. It ends,
// with cause ErrStopped, when the program stops. From it, NodeFromContext
// tells a node its label and index, and Stop stops the whole program.
// Program.Stop does the same from any goroutine, inside a node or not, in
// every launch type.
//
// A node that returns nil simply ends; the others keep running (as in
// Launchpad), so a program whose servers should end calls Stop. A node that
// returns an error, or panics (returned as *PanicError), makes the launcher
// stop the whole program.
//
// # Launchers
//
// Launchers implement Env and use Bind and Run; package launch is the
// launcher. Tests may use them directly with a fake Env.
//
// # Concurrency
//
// Building a program is not safe for concurrent use. Once built, a
// Program, its handles and the functions of this package are safe for
// concurrent use.
package program
