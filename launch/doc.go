// Package launch runs programs of package program: all nodes in one
// process (local_mt), one child process per node (local_mp), or in-process
// under a test (test_mt). The program is the same; only a flag changes.
//
//	func main() {
//		launch.RegisterFlags(flag.CommandLine) // if main parses flags
//		flag.Parse()
//		if err := launch.Launch(context.Background(), buildProgram()); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//	}
//
//	go run ./cmd/agent --lp_launch_type=local_mp
//
// Launch blocks until the program ends and returns the error that ended
// it: the first failing node's *NodeError, ctx's error, ErrInterrupted, an
// error matching ErrGraceExceeded, or nil. Start returns at once; StartTest
// is for tests. docs/launch.md is the user guide; this comment is the
// reference.
//
// # Flags and options
//
// Launch reads the --lp_* flags from os.Args itself (WithArgs changes
// that), so programs need not parse flags; one that does with package flag
// calls RegisterFlags first so that its parser accepts them. An unknown
// --lp_ flag is an error. Options override flags.
//
//	--lp_launch_type   local_mt (default), local_mp, test_mt    WithLaunchType
//	--lp_grace_period  time to stop before a kill, default 10s  WithGracePeriod
//	--lp_terminal      current_terminal (default), output_to_files,
//	                   tmux_session                             WithTerminal
//	--lp_log_dir       directory of per-node log files          WithLogDir
//
// # local_mp
//
// Every node (every member of a process colocation; a thread colocation is
// one node) runs in a child process: the running binary, re-executed with
// the launcher's arguments and environment plus RECALL_LP_* variables that
// name the node. The child's main builds the same program and calls Launch,
// which notices the variables, checks that the program matches the
// launcher's (a fingerprint of its node IDs and kinds), runs only that node
// and exits: status 0 when the node returned nil or stopped, 1 when it
// returned an error (or could not start), 2 when it panicked. Code after
// Launch in main runs only in the launcher; deferred calls of main do not
// run in children. What main does before Launch runs in every child, so it
// should be cheap and free of side effects.
//
// Addresses: the launcher serves a small control service (courier, on
// loopback, with a per-launch token) whose address children get in their
// environment. A serving node binds port 0, registers (node, address) with
// the launcher, then resolves the handles it was given by asking the
// launcher, which answers once the target has registered. The launcher owns
// the address table; no port is picked before its node binds it, so there
// is no port race. A restarted node binds its previous address again when it
// can, so clients reconnect.
//
// Processes: the children share one process group, led by a keeper process
// (the binary again, doing nothing but wait), separate from the launcher's
// group: a terminal's Ctrl-C reaches only the launcher, which stops the
// program in order. Every child has SIGKILL as its parent-death signal, and
// the keeper, when the launcher dies (parent-death SIGTERM, or EOF on the
// pipe from the launcher), kills the whole group, processes started by
// nodes included. So even SIGKILL of the launcher leaves no process behind.
// Children are always waited for: no zombies.
//
// Output: with current_terminal, every line a child writes is copied to the
// launcher's stdout or stderr prefixed with the node's ID in brackets,
// coloured when stdout is a terminal and $NO_COLOR is unset (WithColor
// forces it):
//
//	[producer/1] serving on 127.0.0.1:41234
//
// With output_to_files, each node writes label_index.log in the log
// directory. With tmux_session, the files are written too and a detached
// tmux session gets one window per node following its file; the session
// stays after the program ends, for reading. In every mode the launcher
// keeps the last 20 stderr lines of each child for error reports.
//
// # Stop
//
// The program stops when a node calls program.Stop (or Program.Stop from
// anywhere), Run.Stop is called, ctx ends, the launcher gets SIGINT or
// SIGTERM (with WithSignalHandling, the default outside test_mt), or a
// node fails. Then:
//
//  1. every node context ends, with cause program.ErrStopped (local_mp
//     children hear it from the control service);
//  2. under local_mp, every child also gets SIGTERM, which does the same
//     in children still starting;
//  3. after the grace period, nodes still running are killed with SIGKILL
//     (the whole process group), or, in-process, abandoned: Launch returns
//     and their goroutines are left running. Either way, Launch's error
//     matches ErrGraceExceeded if nothing else went wrong first.
//
// A second SIGINT or SIGTERM skips the grace period. Errors nodes return
// once the stop has begun are logged, not returned: they are usually
// consequences of the stop.
//
// # Failures and restarts
//
// A node fails when it returns a non-nil error or panics, or, under
// local_mp, when its process exits with a non-zero status or is killed.
// Without a restart policy the first failure stops the program and Launch
// returns it as a *NodeError with the node's ID, its error (under local_mp,
// the message the child reported), the exit code or signal, the restart
// count and the last stderr lines. WithRestartPolicy(label, policy)
// restarts the nodes of a group up to MaxRestarts times each, after an
// exponential backoff; nothing restarts once the program is stopping.
//
// # test_mt
//
// test_mt runs nodes in-process like local_mt, without signal handling and
// with a 5s grace period. StartTest launches a program for a test and
// stops it at the test's end (a failure fails the test); WithDisabledRun
// keeps chosen nodes from running so the test can drive them through their
// handles, which any code of the test may dereference:
//
//	p := buildProgram()
//	launch.StartTest(t, p, launch.WithDisabledRun("consumer"))
//	h, _ := program.Lookup[*courier.Client](p, program.ID("consumer", 0))
//	c, _ := h.Dereference(ctx)
//	res, err := courier.CallT[[]int](ctx, c, "Gather")
//
// # Concurrency
//
// Launch and Start may be called concurrently for different programs; a
// program is launched once at a time. Run's methods are safe for concurrent
// use. Every goroutine a launch starts ends before Wait returns, except the
// goroutines of in-process nodes abandoned after the grace period.
package launch
