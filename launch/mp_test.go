package launch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/internal/testutil"
	"github.com/recall-rl/recall/launch"
)

func TestLocalMP_CleanStop(t *testing.T) {
	t.Parallel()
	out, _, err := launchMP(t, params{Kind: "clean", N: 3, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if !strings.Contains(out, "[caller/0] pinged 3 echos, sum 3") {
		t.Errorf("output lacks the caller's prefixed line:\n%s", out)
	}
}

func TestLocalMP_CrashStopsProgram(t *testing.T) {
	t.Parallel()
	out, _, err := launchMP(t, params{Kind: "crash", N: 2, Dir: t.TempDir()})
	var ne *launch.NodeError
	if !errors.As(err, &ne) {
		t.Fatalf("Launch = %v, want a *NodeError", err)
	}
	if ne.Node.String() != "crasher/0" || ne.ExitCode != 1 || !strings.Contains(ne.Err.Error(), "boom") {
		t.Errorf("NodeError = %+v, want crasher/0, exit code 1, boom", ne)
	}
	if len(ne.Stderr) != 20 || ne.Stderr[0] != "crasher line 11" || !strings.Contains(ne.Stderr[19], "boom") {
		t.Errorf("stderr tail = %q, want the last 20 lines", ne.Stderr)
	}
	msg := err.Error()
	for _, want := range []string{"node crasher/0 failed (exit code 1): boom", "last 20 stderr lines of crasher/0:", "  | crasher line 29"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
	// The other nodes stopped when asked: none had to be killed once the
	// grace period was over.
	if strings.Contains(out, killingNodes) {
		t.Errorf("the other nodes did not stop within the grace period")
	}
}

func TestLocalMP_ExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, node string
		code       int
		msg        string
	}{
		{"panic", "panicker/0", 2, "panic: kaboom"},
		{"exit", "exiter/0", 3, "exited with status 3 without reporting an error"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			_, _, err := launchMP(t, params{Kind: tc.kind, N: 1, Dir: t.TempDir()})
			var ne *launch.NodeError
			if !errors.As(err, &ne) {
				t.Fatalf("Launch = %v, want a *NodeError", err)
			}
			if ne.Node.String() != tc.node || ne.ExitCode != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got node %s, exit code %d, error %q; want %s, %d, %q", ne.Node, ne.ExitCode, err, tc.node, tc.code, tc.msg)
			}
		})
	}
}

func TestLocalMP_StuckNodeKilledAfterGrace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const grace = 500 * time.Millisecond
	_, d, err := launchMP(t, params{Kind: "stuck", Dir: dir}, launch.WithGracePeriod(grace))
	if !errors.Is(err, launch.ErrGraceExceeded) {
		t.Fatalf("Launch = %v, want ErrGraceExceeded", err)
	}
	var ne *launch.NodeError
	if !errors.As(err, &ne) || ne.Node.String() != "stuck/0" || ne.Signal != "SIGKILL" {
		t.Errorf("error %v: want node stuck/0 killed by SIGKILL", err)
	}
	if d < grace || d > grace+5*time.Second {
		t.Errorf("Launch took %v, want about the grace period %v", d, grace)
	}
	pid := readPids(t, filepath.Join(dir, "stuck.pid"))[0]
	if alive(pid) {
		t.Errorf("stuck node %d still alive after Launch returned", pid)
	}
}

func TestLocalMP_Restarts(t *testing.T) {
	t.Parallel()
	t.Run("recovers", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, _, err := launchMP(t, params{Kind: "restart", Dir: dir, Fail: 2},
			launch.WithRestartPolicy("flaky", launch.RestartPolicy{MaxRestarts: 2, Backoff: 10 * time.Millisecond}))
		if err != nil {
			t.Fatalf("Launch: %v", err)
		}
		if got := readFile(t, filepath.Join(dir, "flaky.attempts")); got != "3" {
			t.Errorf("attempts = %s, want 3", got)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, _, err := launchMP(t, params{Kind: "restart", Dir: dir, Fail: 5},
			launch.WithRestartPolicy("flaky", launch.RestartPolicy{MaxRestarts: 1, Backoff: 10 * time.Millisecond}))
		var ne *launch.NodeError
		if !errors.As(err, &ne) || ne.Restarts != 1 || !strings.Contains(err.Error(), "attempt 2 fails") {
			t.Fatalf("Launch = %v, want a NodeError after 1 restart with attempt 2's error", err)
		}
		if got := readFile(t, filepath.Join(dir, "flaky.attempts")); got != "2" {
			t.Errorf("attempts = %s, want 2", got)
		}
	})
	t.Run("no policy", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, _, err := launchMP(t, params{Kind: "restart", Dir: dir, Fail: 1})
		if err == nil || readFile(t, filepath.Join(dir, "flaky.attempts")) != "1" {
			t.Fatalf("Launch = %v after %s attempts, want a failure after 1", err, readFile(t, filepath.Join(dir, "flaky.attempts")))
		}
	})
	t.Run("server keeps its address", func(t *testing.T) {
		t.Parallel()
		out, _, err := launchMP(t, params{Kind: "restart-server", Dir: t.TempDir()},
			launch.WithRestartPolicy("server", launch.RestartPolicy{MaxRestarts: 1, Backoff: 10 * time.Millisecond}))
		if err != nil {
			t.Fatalf("Launch: %v", err)
		}
		if !strings.Contains(out, "server restarted") {
			t.Errorf("the client did not see the restarted server:\n%s", out)
		}
	})
}

// TestLocalMP_32Nodes starts 32 courier nodes, each in its own process, and
// measures how long until all of them answer an RPC (the bar is 3s, for an
// uninstrumented build), then stops them.
func TestLocalMP_32Nodes(t *testing.T) {
	t.Parallel()
	const n = 32
	tp := params{Kind: "serve", N: n, Dir: t.TempDir()}
	var out testutil.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	r, err := launch.Start(ctx, build(tp), launch.WithLaunchType(launch.LocalMP), launch.WithArgs(nil),
		launch.WithEnv(tp.env(), noRaceExitSleep), launch.WithOutput(&out, &out), launch.WithSignalHandling(false))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		addr, err := r.Address(ctx, idOf("echo", i))
		if err != nil {
			t.Fatalf("Address: %v", err)
		}
		c, err := courier.Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		v, err := courier.CallT[int](ctx, c, "Ping", i)
		c.Close()
		if err != nil || v != i {
			t.Fatalf("echo/%d: Ping = %v, %v", i, v, err)
		}
	}
	serving := time.Since(start)
	r.Stop()
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait: %v\n%s", err, out.String())
	}
	total := time.Since(start)
	t.Logf("%d nodes serving after %v; stopped after %v in all", n, serving, total)
	limit := 3 * time.Second
	if raceEnabled {
		limit = 20 * time.Second // race-instrumented children start slowly
	}
	if serving > limit {
		t.Errorf("%d nodes took %v to serve, want < %v", n, serving, limit)
	}
}

func TestLocalMP_Colocations(t *testing.T) {
	t.Parallel()
	out, _, err := launchMP(t, params{Kind: "colocation", Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	i := strings.Index(out, "members: ")
	if i < 0 {
		t.Fatalf("no members line in:\n%s", out)
	}
	fields := strings.Fields(strings.SplitN(out[i:], "\n", 2)[0])[1:]
	pids := map[string]string{}
	for _, f := range fields {
		who, pid, _ := strings.Cut(f, "@")
		pids[who] = pid
	}
	if len(pids) != 4 || pids["threads/0/0"] == "" || pids["procs/0/1"] == "" {
		t.Fatalf("members = %v", pids)
	}
	if pids["threads/0/0"] != pids["threads/0/1"] {
		t.Errorf("thread colocation members run in different processes: %v", pids)
	}
	if pids["procs/0/0"] == pids["procs/0/1"] || pids["procs/0/0"] == pids["threads/0/0"] {
		t.Errorf("process colocation members share a process: %v", pids)
	}
}

func TestLocalMP_ReplayNode(t *testing.T) {
	t.Parallel()
	out, _, err := launchMP(t, params{Kind: "replay", Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if !strings.Contains(out, "replay tables: 1") {
		t.Errorf("output:\n%s", out)
	}
}

func TestLocalMP_StopFromRPC(t *testing.T) {
	t.Parallel()
	if _, _, err := launchMP(t, params{Kind: "stop-rpc", Dir: t.TempDir()}); err != nil {
		t.Fatalf("Launch: %v", err)
	}
}

func TestLocalMP_StopFromLauncher(t *testing.T) {
	t.Parallel()
	tp := params{Kind: "serve", N: 2, Dir: t.TempDir()}
	var out testutil.SyncBuffer
	r, err := launch.Start(context.Background(), build(tp), launch.WithLaunchType(launch.LocalMP),
		launch.WithArgs(nil), launch.WithEnv(tp.env(), noRaceExitSleep), launch.WithOutput(&out, &out), launch.WithSignalHandling(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		if _, err := r.Address(ctx, idOf("echo", i)); err != nil {
			t.Fatalf("Address: %v", err)
		}
	}
	r.Stop()
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait: %v\n%s", err, out.String())
	}
}

func TestLocalMP_ContextCancel(t *testing.T) {
	t.Parallel()
	tp := params{Kind: "serve", N: 1, Dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := launch.Launch(ctx, build(tp), launch.WithLaunchType(launch.LocalMP),
		launch.WithArgs(nil), launch.WithEnv(tp.env(), noRaceExitSleep), launch.WithSignalHandling(false))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Launch = %v, want context.DeadlineExceeded", err)
	}
}

func TestLocalMP_ArgsForwarded(t *testing.T) {
	t.Parallel()
	out, _, err := launchMP(t, params{Kind: "args", Dir: t.TempDir()},
		launch.WithArgs([]string{"--lp_grace_period=3s", "--mine=1", "x"}))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if !strings.Contains(out, `args: ["--lp_grace_period=3s" "--mine=1" "x"]`) {
		t.Errorf("child did not get the launcher's arguments:\n%s", out)
	}
}

func TestLocalMP_ProgramMismatch(t *testing.T) {
	t.Parallel()
	_, _, err := launchMP(t, params{Kind: "mismatch", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "differs from the launcher's") {
		t.Fatalf("Launch = %v, want a program mismatch error", err)
	}
}

func TestLocalMP_OutputToFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, _, err := launchMP(t, params{Kind: "clean", N: 1, Dir: t.TempDir()},
		launch.WithTerminal(launch.OutputToFiles), launch.WithLogDir(dir))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if strings.Contains(out, "pinged") {
		t.Errorf("node output went to the terminal:\n%s", out)
	}
	if got := readFile(t, filepath.Join(dir, "caller_0.log")); got != "pinged 1 echos, sum 0" {
		t.Errorf("caller_0.log = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "echo_0.log")); err != nil {
		t.Error(err)
	}
}

func TestLocalMP_Tmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("no tmux")
	}
	t.Setenv("TMUX_TMPDIR", t.TempDir()) // a private tmux server
	t.Cleanup(func() { _ = exec.Command("tmux", "kill-server").Run() })
	dir := t.TempDir()
	_, _, err := launchMP(t, params{Kind: "clean", N: 2, Dir: t.TempDir()},
		launch.WithTerminal(launch.TmuxSession), launch.WithLogDir(dir), launch.WithTmuxSession("lptest"))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	out, err := exec.Command("tmux", "list-windows", "-t", "lptest", "-F", "#{window_name}").Output()
	if err != nil {
		t.Fatalf("tmux list-windows: %v", err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "echo/0 echo/1 caller/0" {
		t.Errorf("tmux windows = %v", got)
	}
	if got := readFile(t, filepath.Join(dir, "caller_0.log")); got != "pinged 2 echos, sum 1" {
		t.Errorf("caller_0.log = %q", got)
	}
}

// TestLocalMP_SIGKILLLauncher kills a launcher (a subprocess) with SIGKILL
// and checks that no node, nor any process a node started, survives it.
func TestLocalMP_SIGKILLLauncher(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tp := params{Kind: "sigkill", N: 2, Dir: dir}
	mark := "LAUNCH_TEST_MARK=" + strconv.FormatInt(time.Now().UnixNano(), 36)
	launcher := startLauncher(t, "local_mp", tp, mark)
	// Wait for every node to be up: sleepers with their grandchildren,
	// echos serving.
	files := []string{"sleeper0.pid", "sleeper1.pid", "echo0.pid", "echo1.pid"}
	deadline := time.Now().Add(30 * time.Second)
	var pids []int
	for _, f := range files {
		for {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared; launcher output:\n%s", f, launcher.Output.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		pids = append(pids, readPids(t, filepath.Join(dir, f))...)
	}
	marked := markedProcesses(mark)
	t.Logf("node and grandchild PIDs %v; processes with the mark: %v", pids, marked)
	if len(marked) < 6 { // launcher, keeper, 5 nodes (+ sleeps, which have the mark too)
		t.Fatalf("only %d marked processes: %v", len(marked), marked)
	}

	launcher.Signal(t, syscall.SIGKILL)
	launcher.Wait(t, 10*time.Second) // -1: killed
	deadline = time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, pid := range append(pids, marked...) {
			if pid != launcher.Cmd.Process.Pid && alive(pid) {
				left = append(left, fmt.Sprintf("%d (%s)", pid, procStat(pid)))
			}
		}
		for _, pid := range markedProcesses(mark) {
			if alive(pid) {
				left = append(left, fmt.Sprintf("marked %d (%s)", pid, procStat(pid)))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left after SIGKILL of the launcher: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// markedProcesses returns the PIDs of live processes whose environment
// holds mark.
func markedProcesses(mark string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == mark && alive(pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// procStat returns /proc/pid/stat, or "" if the process is gone.
func procStat(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st := procStat(pid)
	if st == "" {
		return false
	}
	// The state follows the command name in parentheses.
	i := strings.LastIndexByte(st, ')')
	return i < 0 || i+2 >= len(st) || (st[i+2] != 'Z' && st[i+2] != 'X')
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func readPids(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	for _, f := range strings.Fields(readFile(t, path)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pids = append(pids, pid)
	}
	return pids
}
