package launch

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/program"
)

// mpBackend runs every unit as a child process (local_mp).
//
// The children and a keeper process share one process group, distinct from
// the launcher's (so a terminal's Ctrl-C reaches only the launcher, which
// stops the program in order). Every child gets SIGKILL as its parent-death
// signal; the keeper gets SIGTERM and then kills the whole group, which
// also catches processes the nodes started. So killing the launcher, even
// with SIGKILL, leaves nothing behind.
type mpBackend struct {
	r    *Run
	exe  string
	ctl  *control
	srv  *courier.Server
	addr string
	out  *output
	fp   string

	keeper     *exec.Cmd
	keeperIn   io.WriteCloser
	keeperDone chan struct{} // closed when the keeper has exited
	keeperErr  error         // its Wait result, set before keeperDone closes
	pgid       int

	mu     sync.Mutex
	live   map[*exec.Cmd]bool
	killed bool
}

func newMPBackend(r *Run) (err error) {
	b := &mpBackend{r: r, exe: r.o.exe, live: map[*exec.Cmd]bool{}, fp: fingerprint(r.p)}
	if b.exe == "" {
		if b.exe, err = os.Executable(); err != nil {
			return fmt.Errorf("launch: local_mp: %w", err)
		}
	}
	r.be = b
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	b.ctl = &control{r: r, token: rand.Text(), reports: map[string]report{}}
	if b.srv, err = courier.NewServer(b.ctl); err != nil {
		return err
	}
	if b.addr, err = b.srv.Listen(""); err != nil {
		return err
	}
	if b.out, err = newOutput(r); err != nil {
		return err
	}
	return b.startKeeper()
}

// startKeeper starts the process group's leader: the binary in keeper
// role, which waits for the launcher to die (parent-death signal, or EOF on
// its stdin) and then kills the group.
func (b *mpBackend) startKeeper() error {
	cmd := exec.Command(b.exe, b.r.o.args...)
	cmd.Env = append(b.baseEnv(), envRole+"=keeper")
	cmd.SysProcAttr = procAttr(0, syscall.SIGTERM)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("launch: start keeper %s: %w", b.exe, err)
	}
	b.keeper, b.keeperIn, b.pgid = cmd, in, cmd.Process.Pid
	b.keeperDone = make(chan struct{})
	go func() {
		b.keeperErr = cmd.Wait()
		close(b.keeperDone)
	}()
	return nil
}

func (b *mpBackend) baseEnv() []string {
	env := make([]string, 0, len(os.Environ())+len(b.r.o.env)+10)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RECALL_LP_") || strings.HasPrefix(kv, "RECALL_LP_LOG_DIR=") {
			env = append(env, kv)
		}
	}
	env = append(env, b.r.o.env...)
	return append(env,
		envControl+"="+b.addr,
		envToken+"="+b.ctl.token,
		envParent+"="+strconv.Itoa(os.Getpid()),
		envFingerprint+"="+b.fp,
	)
}

// addrsOf returns the registered addresses of u and its members, for a
// restarted child to bind again.
func (b *mpBackend) addrsOf(u *unit) string {
	var parts []string
	add := func(ni program.NodeInfo) {
		if a := b.r.table.get(ni.ID.String()); a != "" {
			parts = append(parts, ni.ID.String()+"="+a)
		}
	}
	add(u.info)
	for _, m := range u.info.Members {
		add(m)
	}
	return strings.Join(parts, ",")
}

func (b *mpBackend) attempt(u *unit, n int) result {
	stdout, stderr, tail := b.out.forUnit(u, n)
	newCmd := func(pgid int) *exec.Cmd {
		cmd := exec.Command(b.exe, b.r.o.args...)
		cmd.Env = append(b.baseEnv(),
			envRole+"=node",
			envNode+"="+u.id.String(),
			envAttempt+"="+strconv.Itoa(n),
			envAddrs+"="+b.addrsOf(u),
		)
		if u.disabled {
			cmd.Env = append(cmd.Env, envDisableRun+"=1")
		}
		cmd.SysProcAttr = procAttr(pgid, syscall.SIGKILL)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		// Processes the node started may hold the pipes open; do not
		// wait for them long once the child has exited.
		cmd.WaitDelay = time.Second
		return cmd
	}

	b.mu.Lock()
	if b.r.isStopping() {
		b.mu.Unlock()
		return result{}
	}
	cmd := newCmd(b.pgid)
	err := cmd.Start()
	if err != nil && b.keeperGone() {
		// The group went away with its keeper: use a group of its own.
		b.r.log.Warn("the keeper of the process group has exited; the node gets a group of its own, which killing the launcher does not reach",
			"node", u.id.String(), "keeper", b.keeperErr)
		cmd = newCmd(0)
		err = cmd.Start()
	}
	if err != nil {
		b.mu.Unlock()
		return result{err: fmt.Errorf("start %s: %w", b.exe, err), exitCode: -1}
	}
	b.live[cmd] = true
	b.mu.Unlock()

	werr := cmd.Wait()
	stdout.flush()
	stderr.flush()
	b.mu.Lock()
	delete(b.live, cmd)
	killed := b.killed
	b.mu.Unlock()

	st := cmd.ProcessState
	res := result{exitCode: -1}
	if st != nil {
		res.exitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.signal = signalName(ws.Signal())
		}
	}
	rep, reported := b.ctl.takeReport(u.id.String(), n)
	switch {
	case res.exitCode == 0:
		return result{}
	case killed && res.signal == "SIGKILL":
		res.killed = true
		res.err = fmt.Errorf("%w %v", ErrGraceExceeded, b.r.o.grace)
	case b.r.isStopping() && res.signal == "SIGTERM":
		return result{} // stopped before it could handle the signal
	case reported && rep.msg != "":
		res.err = errors.New(rep.msg)
	case res.signal != "":
		res.err = fmt.Errorf("killed by %s", res.signal)
	default:
		res.err = fmt.Errorf("exited with status %d without reporting an error: %v", res.exitCode, werr)
	}
	res.stderr = tail.get()
	return res
}

func (b *mpBackend) keeperGone() bool {
	select {
	case <-b.keeperDone:
		return true
	default:
		return false
	}
}

func (b *mpBackend) beginStop() {
	// Children learn about the stop from the control service (WaitStop
	// returns because r.stopping is closed); SIGTERM also reaches those
	// not connected yet.
	b.mu.Lock()
	defer b.mu.Unlock()
	for cmd := range b.live {
		b.signal(cmd, syscall.SIGTERM)
	}
}

func (b *mpBackend) kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.killed = true
	for cmd := range b.live {
		b.signal(cmd, syscall.SIGKILL)
	}
	b.killGroup()
}

// signal sends sig to a child. A failure other than the child having
// exited already is logged: a child that cannot be killed holds up the
// launch.
func (b *mpBackend) signal(cmd *exec.Cmd, sig syscall.Signal) {
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.r.log.Warn("cannot signal a node's process", "pid", cmd.Process.Pid, "signal", signalName(sig), "err", err)
	}
}

// killGroup kills the process group while its leader, the keeper, is
// alive (once the keeper is reaped its PID, the group ID, may be reused).
func (b *mpBackend) killGroup() {
	if b.keeper == nil {
		return
	}
	select {
	case <-b.keeperDone:
	default:
		if err := syscall.Kill(-b.pgid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			b.r.log.Warn("cannot kill the program's process group", "pgid", b.pgid, "err", err)
		}
	}
}

// close kills what is left of the process group (the keeper, and anything
// the nodes started), waits for the keeper and stops the control service.
func (b *mpBackend) close() {
	if b.keeper != nil {
		b.killGroup()
		_ = b.keeperIn.Close()
		<-b.keeperDone
	}
	if b.srv != nil {
		b.srv.Stop()
	}
	if b.out != nil {
		b.out.close()
		if b.out.tmux != "" {
			b.r.log.Info("program ended; the tmux session stays open", "session", b.out.tmux, "kill", "tmux kill-session -t "+b.out.tmux)
		}
	}
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL", syscall.SIGINT: "SIGINT",
	syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGTERM: "SIGTERM", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2",
}

// signalName returns "SIGKILL" and the like.
func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return fmt.Sprintf("signal %d (%v)", int(s), s)
}
