package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/program"
)

// Exit statuses of a local_mp child.
const (
	exitOK    = 0 // the node returned nil, or was stopped
	exitError = 1 // the node returned an error (or could not start)
	exitPanic = 2 // node code panicked (as the Go runtime exits on a panic)
)

// childMain runs the part of a local_mp program this process was started
// for and returns its exit status.
func childMain(ctx context.Context, p *program.Program, role string) int {
	env := map[string]string{}
	for _, k := range allEnv {
		env[k] = os.Getenv(k)
		os.Unsetenv(k)
	}
	if strconv.Itoa(os.Getppid()) != env[envParent] {
		// The launcher died between starting us and now (before the
		// parent-death signal was armed).
		fmt.Fprintf(os.Stderr, "launch: %s: launcher %s is gone\n", role, env[envParent])
		if role == "keeper" {
			_ = syscall.Kill(-syscall.Getpgrp(), syscall.SIGKILL)
		}
		return exitError
	}
	if role == "keeper" {
		return runKeeper()
	}
	c, err := newChild(p, env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch: node %s: %v\n", env[envNode], err)
		if c != nil {
			c.report(err.Error())
			c.ctl.Close()
		}
		return exitError
	}
	return c.run(ctx)
}

// runKeeper leads the program's process group: when the launcher dies
// (parent-death signal SIGTERM, or EOF on stdin, the launcher's pipe) or
// signals it, it kills the whole group, itself included.
func runKeeper() int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-sig:
	case <-eof:
	}
	_ = syscall.Kill(-syscall.Getpgrp(), syscall.SIGKILL)
	return exitOK
}

// child runs one unit of a local_mp program.
type child struct {
	p       *program.Program
	id      program.NodeID
	token   string
	attempt int
	disable bool
	ctl     *courier.Client
	prev    map[string]string // previous addresses, id -> addr

	mu       sync.Mutex
	resolved map[string]string
	stopped  bool
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup // Stop requests in flight
}

func newChild(p *program.Program, env map[string]string) (*child, error) {
	c := &child{p: p, token: env[envToken], disable: env[envDisableRun] == "1", prev: map[string]string{}, resolved: map[string]string{}}
	var err error
	if c.attempt, err = strconv.Atoi(env[envAttempt]); err != nil {
		return nil, fmt.Errorf("bad %s: %v", envAttempt, err)
	}
	// Fail fast if the launcher goes away, instead of waiting for it.
	ctl, err := courier.Dial(context.Background(), env[envControl], courier.WithWaitForReady(false))
	if err != nil {
		return nil, err
	}
	c.ctl = ctl
	if c.id, err = program.ParseNodeID(env[envNode]); err != nil {
		return c, err
	}
	if err := p.Validate(); err != nil {
		return c, err
	}
	if fp := fingerprint(p); fp != env[envFingerprint] {
		return c, fmt.Errorf("the program built in this process differs from the launcher's (fingerprint %s, launcher's %s): build it deterministically, from the same flags", fp, env[envFingerprint])
	}
	for _, kv := range strings.Split(env[envAddrs], ",") {
		if id, addr, ok := strings.Cut(kv, "="); ok {
			c.prev[id] = addr
		}
	}
	return c, nil
}

func (c *child) run(ctx context.Context) int {
	defer c.ctl.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)

	nodeCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()

	unbind, err := c.p.Bind(c)
	if err != nil {
		c.report(err.Error())
		return exitError
	}
	var watchers sync.WaitGroup
	quit := make(chan struct{})
	watchers.Go(func() {
		select {
		case <-sig:
			cancel(program.ErrStopped)
		case <-quit:
		}
	})
	watchers.Go(func() { c.watchLauncher(nodeCtx, cancel) })

	var opts []program.RunOption
	if c.disable {
		opts = append(opts, program.DisableRun())
	}
	err = c.p.Run(nodeCtx, c.id, opts...)

	code, msg := exitOK, ""
	var pe *program.PanicError
	switch {
	case err == nil:
	case nodeCtx.Err() != nil && stopError(err):
		// Stopped: a clean end.
	case errors.As(err, &pe):
		code, msg = exitPanic, err.Error()
	default:
		code, msg = exitError, err.Error()
	}
	if code != exitOK {
		fmt.Fprintf(os.Stderr, "node %s: %s\n", c.id, msg)
	}
	c.report(msg)
	close(quit)
	cancel(program.ErrStopped)
	c.wg.Wait()
	unbind()
	c.ctl.Close() // ends watchLauncher's call
	watchers.Wait()
	return code
}

// watchLauncher waits for the launcher's stop. If the launcher becomes
// unreachable it stops the node too, and exits the process if the node has
// not returned a few seconds later (the parent-death signal normally kills
// the process first).
func (c *child) watchLauncher(ctx context.Context, cancel context.CancelCauseFunc) {
	_, err := c.ctl.Call(ctx, "WaitStop", c.token)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		cancel(program.ErrStopped)
		return
	}
	cancel(fmt.Errorf("%w: launcher unreachable: %v", program.ErrStopped, err))
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
		fmt.Fprintf(os.Stderr, "launch: node %s: launcher unreachable; exiting\n", c.id)
		os.Exit(exitError)
	case <-ctx.Done():
	}
}

// report tells the launcher the node's error ("" if it ended cleanly). If
// that fails, the launcher still has the exit status and the stderr tail,
// where run printed the error.
func (c *child) report(msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = c.ctl.Call(ctx, "Report", c.token, c.id.String(), c.attempt, msg)
}

// --- program.Env ----------------------------------------------------------

func (c *child) Listen(_ context.Context, id program.NodeID) (net.Listener, error) {
	return listen(c.prev[id.String()])
}

func (c *child) Register(ctx context.Context, id program.NodeID, addr string) error {
	_, err := c.ctl.Call(ctx, "Register", c.token, id.String(), addr)
	return err
}

func (c *child) Resolve(ctx context.Context, id program.NodeID) (string, error) {
	key := id.String()
	c.mu.Lock()
	addr, ok := c.resolved[key]
	c.mu.Unlock()
	if ok {
		return addr, nil
	}
	addr, err := courier.CallT[string](ctx, c.ctl, "Resolve", c.token, key)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.resolved[key] = addr
	c.mu.Unlock()
	return addr, nil
}

// Stop asks the launcher to stop the program; the node's context ends when
// the launcher's stop comes back (WaitStop), so that the program is known
// to be stopping before this node goes away and its peers notice. If the
// launcher cannot be reached, the node stops at once.
func (c *child) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.ctl.Call(ctx, "Stop", c.token, c.id.String()); err != nil {
			c.mu.Lock()
			cancelNode := c.cancel
			c.mu.Unlock()
			if cancelNode != nil {
				cancelNode(program.ErrStopped)
			}
		}
	})
}
