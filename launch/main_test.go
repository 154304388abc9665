package launch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/internal/testutil"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

// Tests of local_mp re-execute this test binary: TestMain sees
// envParams and, instead of running the tests, builds the test program
// those parameters describe and calls launch.Launch with it, which runs the
// child's node (or, with envLauncher set, the launcher itself).
const (
	envParams   = "LAUNCH_TEST_PARAMS"
	envLauncher = "LAUNCH_TEST_LAUNCHER" // launch type of a launcher subprocess
)

func TestMain(m *testing.M) {
	if s := os.Getenv(envParams); s != "" {
		var tp params
		if err := json.Unmarshal([]byte(s), &tp); err != nil {
			fmt.Fprintln(os.Stderr, "bad test params:", err)
			os.Exit(3)
		}
		var opts []launch.Option
		if lt := os.Getenv(envLauncher); lt != "" {
			os.Unsetenv(envLauncher)
			opts = append(opts, launch.WithLaunchType(launch.LaunchType(lt)), launch.WithArgs(nil))
			if tp.Grace > 0 {
				opts = append(opts, launch.WithGracePeriod(tp.Grace))
			}
		}
		if err := launch.Launch(context.Background(), build(tp), opts...); err != nil {
			fmt.Fprintln(os.Stderr, "launch:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// params describes a test program; children rebuild it from the same
// params.
type params struct {
	Kind  string        // which program
	N     int           // number of echo nodes
	Dir   string        // scratch directory shared with children
	Fail  int           // attempts that fail before one succeeds
	Grace time.Duration // for launcher subprocesses
}

func (tp params) env() string {
	b, _ := json.Marshal(tp)
	return envParams + "=" + string(b)
}

// noRaceExitSleep keeps race-instrumented children from sleeping a second
// at exit (the race runtime's default); a race still makes a child exit
// with status 66, failing its launch.
const noRaceExitSleep = "GORACE=atexit_sleep_ms=0"

// Echo is the courier node of test programs.
type Echo struct{ dir string }

func newEcho(dir string) *Echo { return &Echo{dir: dir} }

// Ping returns x.
func (e *Echo) Ping(x int) int { return x }

// Pid returns the serving process's PID.
func (e *Echo) Pid() int { return os.Getpid() }

// Who returns the serving node's ID, read from the RPC's context.
func (e *Echo) Who(ctx context.Context) string {
	id, _ := program.NodeFromContext(ctx)
	return id.String()
}

// Die exits the serving process with status 4.
func (e *Echo) Die() {
	fmt.Fprintln(os.Stderr, "server: dying")
	os.Exit(4)
}

// StopProgram stops the program from inside an RPC.
func (e *Echo) StopProgram(ctx context.Context) error { return program.Stop(ctx) }

// pingAll calls Ping on every echo, prints a line, and stops the program.
func pingAll(ctx context.Context, echos []*courier.Client) error {
	sum := 0
	for i, c := range echos {
		v, err := courier.CallT[int](ctx, c, "Ping", i)
		if err != nil {
			return fmt.Errorf("ping %d: %w", i, err)
		}
		sum += v
	}
	fmt.Printf("pinged %d echos, sum %d\n", len(echos), sum)
	return program.Stop(ctx)
}

// attempt counts the runs of name in dir and returns this run's number,
// from 1.
func attempt(dir, name string) int {
	f := filepath.Join(dir, name+".attempts")
	b, _ := os.ReadFile(f)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	_ = os.WriteFile(f, []byte(strconv.Itoa(n)), 0o644)
	return n
}

func writePid(dir, name string) {
	_ = os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

func echos(p *program.Program, n int, dir string) []program.Handle[*courier.Client] {
	var hs []program.Handle[*courier.Client]
	for range n {
		hs = append(hs, program.AddNode(p, "echo", program.NewCourierNode(newEcho, dir)))
	}
	return hs
}

// build returns the test program tp describes. It must be deterministic:
// children build it again.
func build(tp params) *program.Program {
	p := program.New("test-" + tp.Kind)
	switch tp.Kind {
	case "clean": // N echos; a caller pings them all and stops
		hs := echos(p, tp.N, tp.Dir)
		program.AddNode(p, "caller", program.NewFuncNode(pingAll, hs))

	case "crash": // a node fails while others serve
		echos(p, tp.N, tp.Dir)
		program.AddNode(p, "crasher", program.NewFuncNode(func(ctx context.Context) error {
			for i := range 30 {
				fmt.Fprintf(os.Stderr, "crasher line %d\n", i)
			}
			time.Sleep(100 * time.Millisecond)
			return errors.New("boom")
		}))

	case "panic":
		echos(p, tp.N, tp.Dir)
		program.AddNode(p, "panicker", program.NewFuncNode(func() { panic("kaboom") }))

	case "exit": // node code exits the process by itself
		echos(p, tp.N, tp.Dir)
		program.AddNode(p, "exiter", program.NewFuncNode(func() { os.Exit(3) }))

	case "stuck": // a node ignores the stop
		program.AddNode(p, "stuck", program.NewFuncNode(func() {
			writePid(tp.Dir, "stuck")
			select {}
		}))
		program.AddNode(p, "stopper", program.NewFuncNode(func(ctx context.Context) error {
			for {
				if _, err := os.Stat(filepath.Join(tp.Dir, "stuck.pid")); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			return program.Stop(ctx)
		}))

	case "restart": // flaky fails tp.Fail times, then stops the program
		program.AddNode(p, "flaky", program.NewFuncNode(func(ctx context.Context) error {
			if n := attempt(tp.Dir, "flaky"); n <= tp.Fail {
				return fmt.Errorf("attempt %d fails", n)
			}
			return program.Stop(ctx)
		}))

	case "restart-server": // the client kills the server once and keeps using it
		srv := program.AddNode(p, "server", program.NewCourierNode(newEcho, tp.Dir))
		program.AddNode(p, "client", program.NewFuncNode(func(ctx context.Context, c *courier.Client) error {
			first, err := courier.CallT[int](ctx, c, "Pid")
			if err != nil {
				return err
			}
			_, _ = c.Call(ctx, "Die") // fails: the server exits without answering
			for {
				pid, err := courier.CallT[int](ctx, c, "Pid")
				if err == nil && pid != first {
					fmt.Printf("server restarted: pid %d -> %d\n", first, pid)
					return program.Stop(ctx)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}, srv))

	case "sigkill": // nodes that also start a grandchild; they never stop
		for i := range tp.N {
			program.AddNode(p, "sleeper", program.NewFuncNode(func(ctx context.Context) error {
				cmd := exec.Command("sleep", "1000")
				if err := cmd.Start(); err != nil {
					return err
				}
				_ = os.WriteFile(filepath.Join(tp.Dir, fmt.Sprintf("sleeper%d.pid", i)),
					fmt.Appendf(nil, "%d %d", os.Getpid(), cmd.Process.Pid), 0o644)
				<-ctx.Done()
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				return nil
			}))
		}
		hs := echos(p, 2, tp.Dir)
		program.AddNode(p, "waiter", program.NewFuncNode(func(ctx context.Context, cs []*courier.Client) error {
			for i, c := range cs {
				pid, err := courier.CallT[int](ctx, c, "Pid")
				if err != nil {
					return err
				}
				_ = os.WriteFile(filepath.Join(tp.Dir, fmt.Sprintf("echo%d.pid", i)), fmt.Append(nil, pid), 0o644)
			}
			<-ctx.Done()
			return nil
		}, hs))

	case "colocation": // thread and process colocations
		t0, t1 := program.NewCourierNode(newEcho, tp.Dir), program.NewCourierNode(newEcho, tp.Dir)
		program.AddNode(p, "threads", program.NewThreadColocation(t0, t1))
		p0, p1 := program.NewCourierNode(newEcho, tp.Dir), program.NewCourierNode(newEcho, tp.Dir)
		program.AddNode(p, "procs", program.NewProcessColocation(p0, p1))
		all := []program.Handle[*courier.Client]{t0.Handle(), t1.Handle(), p0.Handle(), p1.Handle()}
		program.AddNode(p, "checker", program.NewFuncNode(func(ctx context.Context, cs []*courier.Client) error {
			var out []string
			for _, c := range cs {
				who, err := courier.CallT[string](ctx, c, "Who")
				if err != nil {
					return err
				}
				pid, err := courier.CallT[int](ctx, c, "Pid")
				if err != nil {
					return err
				}
				out = append(out, fmt.Sprintf("%s@%d", who, pid))
			}
			fmt.Println("members:", strings.Join(out, " "))
			return program.Stop(ctx)
		}, all))

	case "replay":
		rh := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{
			Tables: []table.Options{{Name: "queue", MaxSize: 10}},
		}))
		program.AddNode(p, "user", program.NewFuncNode(func(ctx context.Context, c *replay.Client) error {
			info, err := c.ServerInfo(ctx)
			if err != nil {
				return err
			}
			fmt.Printf("replay tables: %d\n", len(info.Tables))
			return program.Stop(ctx)
		}, rh))

	case "stop-rpc": // a node stops the program from inside an RPC method
		hs := echos(p, 1, tp.Dir)
		program.AddNode(p, "caller", program.NewFuncNode(func(ctx context.Context, c *courier.Client) error {
			if _, err := c.Call(ctx, "StopProgram"); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}, hs[0]))

	case "serve": // echos that serve until stopped from outside
		echos(p, tp.N, tp.Dir)

	case "args": // prints the arguments the child got
		program.AddNode(p, "args", program.NewFuncNode(func(ctx context.Context) error {
			fmt.Printf("args: %q\n", os.Args[1:])
			return program.Stop(ctx)
		}))

	case "mismatch": // children build a different program
		echos(p, 1, tp.Dir)
		if os.Getenv("RECALL_LP_ROLE") != "" {
			echos(p, 1, tp.Dir)
		}
	default:
		panic("unknown test program " + tp.Kind)
	}
	return p
}

// startLauncher runs this test binary as the launcher (launch type lt) of
// the test program tp, with env added to its environment.
func startLauncher(t *testing.T, lt string, tp params, env ...string) *testutil.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return testutil.StartProcess(t, exe, append([]string{tp.env(), noRaceExitSleep, envLauncher + "=" + lt}, env...))
}

// launchMP launches the test program tp under local_mp in this process,
// with output captured, and returns its error, output and duration.
func launchMP(t *testing.T, tp params, opts ...launch.Option) (string, time.Duration, error) {
	t.Helper()
	var out testutil.SyncBuffer
	opts = append([]launch.Option{
		launch.WithLaunchType(launch.LocalMP),
		launch.WithArgs(nil),
		launch.WithEnv(tp.env(), noRaceExitSleep),
		launch.WithOutput(&out, &out),
		launch.WithColor(false),
		launch.WithSignalHandling(false),
	}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err := launch.Launch(ctx, build(tp), opts...)
	d := time.Since(start)
	t.Logf("%s: %v in %v; output:\n%s", tp.Kind, err, d, out.String())
	return out.String(), d, err
}

// killingNodes is what the launcher logs when the grace period is over and
// it kills (or abandons) the nodes still running.
const killingNodes = "killing the nodes still running"

func idOf(label string, i int) program.NodeID { return program.ID(label, i) }
