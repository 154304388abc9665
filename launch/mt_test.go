package launch_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// The tests in this file are not parallel, so that the goroutine leak
// checks see only their own goroutines (parallel tests run after them).

func launchMT(t *testing.T, p *program.Program, opts ...launch.Option) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts = append([]launch.Option{launch.WithLaunchType(launch.LocalMT), launch.WithArgs(nil), launch.WithSignalHandling(false)}, opts...)
	return launch.Launch(ctx, p, opts...)
}

func TestLocalMT_Programs(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, kind := range []string{"clean", "colocation", "replay", "stop-rpc"} {
		t.Run(kind, func(t *testing.T) {
			if err := launchMT(t, build(params{Kind: kind, N: 3, Dir: t.TempDir()})); err != nil {
				t.Fatalf("Launch: %v", err)
			}
		})
	}
}

func TestLocalMT_FailureStopsProgram(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	boom := errors.New("boom")
	p := program.New("fail")
	echos(p, 2, "")
	program.AddNode(p, "failer", program.NewFuncNode(func() error { return boom }))
	err := launchMT(t, p)
	var ne *launch.NodeError
	if !errors.As(err, &ne) || ne.Node.String() != "failer/0" || !errors.Is(err, boom) {
		t.Fatalf("Launch = %v, want failer/0's error, matching boom", err)
	}

	err = launchMT(t, build(params{Kind: "panic", N: 1}))
	var pe *program.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" {
		t.Fatalf("Launch = %v, want a PanicError", err)
	}
}

func TestLocalMT_Restarts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	err := launchMT(t, build(params{Kind: "restart", Dir: dir, Fail: 3}),
		launch.WithRestartPolicy("flaky", launch.RestartPolicy{MaxRestarts: 3, Backoff: time.Millisecond}))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "flaky.attempts")); got != "4" {
		t.Errorf("attempts = %s, want 4", got)
	}
}

func TestLocalMT_StuckNodeAbandoned(t *testing.T) {
	release := make(chan struct{})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer close(release)
	// The stopper waits until the stuck node runs: a node whose supervisor
	// sees the stop before starting it is never started, and nothing would
	// be stuck.
	started := make(chan struct{})
	p := program.New("stuck")
	program.AddNode(p, "stuck", program.NewFuncNode(func() { close(started); <-release }))
	program.AddNode(p, "stopper", program.NewFuncNode(func(ctx context.Context) error {
		<-started
		return program.Stop(ctx)
	}))
	start := time.Now()
	err := launchMT(t, p, launch.WithGracePeriod(200*time.Millisecond))
	if !errors.Is(err, launch.ErrGraceExceeded) || !strings.Contains(err.Error(), "stuck/0") {
		t.Fatalf("Launch = %v, want ErrGraceExceeded for stuck/0", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Launch took %v", d)
	}
}

func TestLocalMT_StopFromOutside(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := build(params{Kind: "serve", N: 2})
	r, err := launch.Start(context.Background(), p, launch.WithLaunchType(launch.LocalMT), launch.WithArgs(nil), launch.WithSignalHandling(false))
	if err != nil {
		t.Fatal(err)
	}
	h, err := program.Lookup[*courier.Client](p, program.ID("echo", 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := h.Dereference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := courier.CallT[string](ctx, c, "Who"); err != nil || who != "echo/1" {
		t.Fatalf("Who = %q, %v", who, err)
	}
	p.Stop() // from a goroutine that is no node
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if _, err := h.Dereference(ctx); !errors.Is(err, program.ErrNotLaunched) {
		t.Errorf("Dereference after the launch = %v, want ErrNotLaunched", err)
	}
}

func TestTestMT_DisabledRunAndDereference(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Run("", func(t *testing.T) { // the subtest's cleanup stops the program
		p := program.New("consumer")
		hs := echos(p, 3, "")
		called := make(chan struct{}, 1)
		program.AddNode(p, "caller", program.NewFuncNode(func(ctx context.Context, cs []*courier.Client) {
			called <- struct{}{}
		}, hs))
		launch.StartTest(t, p, launch.WithDisabledRun("caller"))
		ctx := context.Background()
		for i, h := range hs {
			c, err := h.Dereference(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := courier.CallT[int](ctx, c, "Ping", 40+i); err != nil || v != 40+i {
				t.Errorf("echo %d: Ping = %d, %v", i, v, err)
			}
		}
		select {
		case <-called:
			t.Error("the disabled node ran")
		default:
		}
	})
}

func TestLaunch_Errors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := program.New("bad")
	program.AddNode(p, "bad label!", program.NewFuncNode(func() {}))
	program.AddNode(p, "f", program.NewFuncNode(func(x int) {}, "not an int"))
	err := launchMT(t, p)
	if !errors.Is(err, program.ErrInvalidProgram) || !strings.Contains(err.Error(), "bad label!") || !strings.Contains(err.Error(), "string is not assignable to int") {
		t.Errorf("Launch = %v, want both build errors", err)
	}

	ok := build(params{Kind: "args"})
	for _, tc := range []struct {
		opts []launch.Option
		want string
	}{
		{[]launch.Option{launch.WithArgs([]string{"--lp_launch_type=remote"})}, `unknown launch type "remote"`},
		{[]launch.Option{launch.WithArgs([]string{"--lp_lauch_type=local_mp"})}, "unknown flag -lp_lauch_type"},
		{[]launch.Option{launch.WithArgs([]string{"-lp_grace_period", "soon"})}, "lp_grace_period"},
		{[]launch.Option{launch.WithTerminal(launch.OutputToFiles)}, "needs launch type local_mp"},
		{[]launch.Option{launch.WithGracePeriod(-time.Second)}, "negative grace period"},
	} {
		_, err := launch.Start(context.Background(), ok, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

// TestSignalStopsProgram sends SIGTERM, then SIGINT, to a launcher
// subprocess: the first stops the program in order.
func TestSignalStopsProgram(t *testing.T) {
	for _, lt := range []string{"local_mt", "local_mp"} {
		t.Run(lt, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tp := params{Kind: "sigkill", N: 1, Dir: dir, Grace: 10 * time.Second}
			launcher := startLauncher(t, lt, tp)
			for _, f := range []string{"sleeper0.pid", "echo1.pid"} {
				waitFile(t, filepath.Join(dir, f), 30*time.Second)
			}
			start := time.Now()
			launcher.Signal(t, syscall.SIGTERM)
			code := launcher.Wait(t, 30*time.Second)
			out := launcher.Output.String()
			t.Logf("launcher exited after %v with status %d; output:\n%s", time.Since(start), code, out)
			if code != 1 || !strings.Contains(out, "launch: interrupted by signal terminated") {
				t.Fatalf("launcher: exit status %d, want 1 and an interrupted error", code)
			}
			if strings.Contains(out, killingNodes) {
				t.Errorf("nodes were killed after the grace period: the signal did not stop them")
			}
		})
	}
}

func waitFile(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
