package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recall-rl/recall/program"
)

// Errors. Test with errors.Is.
var (
	// ErrInterrupted: the program was stopped by SIGINT or SIGTERM sent to
	// the launcher.
	ErrInterrupted = errors.New("launch: interrupted")
	// ErrGraceExceeded: after a stop, a node did not return within the
	// grace period and was killed (local_mp) or abandoned, its goroutines
	// left running (local_mt, test_mt). The *NodeError of that node wraps
	// it.
	ErrGraceExceeded = errors.New("launch: did not stop within the grace period")
)

// NodeError is the error of a failed node, returned by Launch and Wait when
// that failure stopped the program.
type NodeError struct {
	// Node is the node that failed.
	Node program.NodeID
	// Err is the node's error. Under local_mp it carries the message the
	// child reported (the error's type does not cross the process
	// boundary).
	Err error
	// ExitCode is the child's exit status under local_mp (-1 if a signal
	// killed it), 0 otherwise.
	ExitCode int
	// Signal is the signal that killed the child, if one did: "SIGKILL",
	// "SIGSEGV", ...
	Signal string
	// Restarts is how many times the node had been restarted.
	Restarts int
	// Stderr holds the last lines the child wrote to stderr (local_mp).
	Stderr []string
}

func (e *NodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s failed", e.Node)
	var notes []string
	if e.Signal != "" {
		notes = append(notes, "killed by "+e.Signal)
	} else if e.ExitCode != 0 {
		notes = append(notes, fmt.Sprintf("exit code %d", e.ExitCode))
	}
	if e.Restarts > 0 {
		notes = append(notes, fmt.Sprintf("after %d restarts", e.Restarts))
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Stderr) > 0 {
		fmt.Fprintf(&b, "\nlast %d stderr lines of %s:", len(e.Stderr), e.Node)
		for _, l := range e.Stderr {
			b.WriteString("\n  | ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func (e *NodeError) Unwrap() error { return e.Err }

// unit is one supervised execution: a node added with AddNode, or a member
// of a process colocation.
type unit struct {
	id       program.NodeID
	info     program.NodeInfo
	policy   RestartPolicy
	disabled bool
	color    int
}

// result is how one attempt of a unit ended.
type result struct {
	err      error // nil: clean
	exitCode int
	signal   string
	stderr   []string
	killed   bool // killed or abandoned after the grace period
}

// backend runs units: in-process or as child processes.
type backend interface {
	// attempt runs attempt n of u and returns when it ended.
	attempt(u *unit, n int) result
	// beginStop asks running nodes to stop; r.stopping is closed.
	beginStop()
	// kill ends the nodes still running after the grace period.
	kill()
	// close releases the backend once every unit has ended.
	close()
}

// Run is a launched program. Its methods are safe for concurrent use.
type Run struct {
	ctx   context.Context // Launch's; its values reach in-process nodes
	p     *program.Program
	o     options
	log   *slog.Logger
	be    backend
	units []*unit
	table *addrTable

	stopOnce sync.Once
	stopping chan struct{} // closed when the stop begins
	killOnce sync.Once
	allDone  chan struct{} // closed when every unit has ended
	done     chan struct{} // closed when the result is ready

	mu struct {
		sync.Mutex
		failure   error // first node failure
		stopCause error // why the stop began, if not Stop or a failure
		killErr   error // first grace-period kill
		result    error
	}
	wg sync.WaitGroup // unit supervisors
	bg sync.WaitGroup // the grace timer
}

// Launch runs p until it ends and returns the error that ended it: the
// first node failure (a *NodeError), ctx's error if ctx ended first,
// ErrInterrupted after SIGINT or SIGTERM, an ErrGraceExceeded error if a
// node had to be killed, or nil when every node returned nil or the program
// was stopped with Stop.
//
// The launch type comes from WithLaunchType, else --lp_launch_type, else
// local_mt. Under local_mp, Launch re-executes the running binary once per
// node; in such a child, Launch runs only that node and then exits the
// process (status 0 if the node ended cleanly, 1 if it failed, 2 if it
// panicked) instead of returning, so code after Launch in main runs only in
// the launcher. main should turn a non-nil error into a non-zero exit:
//
//	if err := launch.Launch(ctx, p); err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(1)
//	}
func Launch(ctx context.Context, p *program.Program, opts ...Option) error {
	r, err := Start(ctx, p, opts...)
	if err != nil {
		return err
	}
	return r.Wait()
}

// Start launches p and returns without waiting for it to end; see Launch.
// In a local_mp child, Start runs the child's node and exits the process.
func Start(ctx context.Context, p *program.Program, opts ...Option) (*Run, error) {
	if role := os.Getenv(envRole); role != "" {
		os.Exit(childMain(ctx, p, role))
	}
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	if !o.argsSet {
		o.args = os.Args[1:]
	}
	if err := parseFlags(o.args, &o); err != nil {
		return nil, err
	}
	if err := o.finish(); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if o.stdout == nil {
		o.stdout = os.Stdout
	}
	if o.stderr == nil {
		o.stderr = os.Stderr
	}
	r := &Run{
		ctx:      ctx,
		p:        p,
		o:        o,
		log:      o.logger,
		stopping: make(chan struct{}),
		allDone:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if r.log == nil {
		r.log = defaultLogger(o.stderr)
	}
	r.units = makeUnits(p, &o)
	r.table = newAddrTable(p)
	// The backends set r.be before they start serving anything that may
	// use it.
	var err error
	switch o.launchType {
	case LocalMT, TestMT:
		err = newMTBackend(r)
	case LocalMP:
		err = newMPBackend(r)
	}
	if err != nil {
		return nil, err
	}
	stopSignals := r.handleSignals()
	stopCtx := context.AfterFunc(ctx, func() { r.stop(ctx.Err()) })
	for _, u := range r.units {
		r.wg.Go(func() { r.supervise(u) })
	}
	go r.finish(stopSignals, stopCtx)
	return r, nil
}

func defaultLogger(w interface{ Write([]byte) (int, error) }) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).With("component", "launch")
}

// makeUnits lists the units: every node, with process colocations replaced
// by their members.
func makeUnits(p *program.Program, o *options) []*unit {
	var units []*unit
	add := func(ni program.NodeInfo) {
		u := &unit{id: ni.ID, info: ni, policy: o.restarts[ni.ID.Label], color: len(units)}
		for _, d := range o.disabled {
			if d == ni.ID.Label || d == ni.ID.String() || d == ni.ID.Parent().String() {
				u.disabled = true
			}
		}
		units = append(units, u)
	}
	for _, ni := range p.Nodes() {
		if ni.Kind == program.KindProcessColocation {
			for _, m := range ni.Members {
				add(m)
			}
			continue
		}
		add(ni)
	}
	return units
}

// Type returns the launch type.
func (r *Run) Type() LaunchType { return r.o.launchType }

// Stop asks the program to stop, as program.Stop does: every node's context
// ends, and nodes still running after the grace period are killed (or
// abandoned in-process). It does not wait; use Wait.
func (r *Run) Stop() { r.stop(nil) }

// Done is closed when the program has ended and Wait's result is ready.
func (r *Run) Done() <-chan struct{} { return r.done }

// Wait waits for the program to end and returns what Launch returns.
func (r *Run) Wait() error {
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.result
}

// Address returns the address node id registered, waiting until it has
// registered, ctx ends or the program stops.
func (r *Run) Address(ctx context.Context, id program.NodeID) (string, error) {
	return r.table.wait(ctx, id.String(), r.stopping)
}

func (r *Run) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

// stop begins the stop sequence once: nodes are asked to stop, and after
// the grace period the ones left are killed. cause is recorded if it is the
// first reason.
func (r *Run) stop(cause error) {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		if r.mu.failure == nil && r.mu.stopCause == nil {
			r.mu.stopCause = cause
		}
		r.mu.Unlock()
		close(r.stopping)
		r.be.beginStop()
		r.bg.Go(r.graceTimer)
	})
}

// graceTimer kills what still runs once the grace period has passed.
func (r *Run) graceTimer() {
	t := time.NewTimer(r.o.grace)
	defer t.Stop()
	select {
	case <-r.allDone:
	case <-t.C:
		r.killNow(fmt.Sprintf("grace period %v over", r.o.grace))
	}
}

func (r *Run) killNow(why string) {
	r.killOnce.Do(func() {
		r.log.Warn("killing the nodes still running", "why", why)
		r.be.kill()
	})
}

// supervise runs u, restarting it as its policy says, and reports how it
// ended.
func (r *Run) supervise(u *unit) {
	for n := 0; ; n++ {
		if r.isStopping() {
			return // never started, or stopped during the backoff
		}
		res := r.be.attempt(u, n)
		if res.err != nil && !res.killed && !r.isStopping() && n < u.policy.MaxRestarts {
			d := u.policy.delay(n)
			r.log.Warn("node failed; restarting", "node", u.id.String(), "restart", fmt.Sprintf("%d/%d", n+1, u.policy.MaxRestarts), "backoff", d, "err", firstLine(res.err))
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.stopping:
				t.Stop()
			}
			continue
		}
		r.ended(u, n, res)
		return
	}
}

// ended records how u ended after n restarts.
func (r *Run) ended(u *unit, n int, res result) {
	if res.err == nil {
		return
	}
	ne := &NodeError{Node: u.id, Err: res.err, ExitCode: res.exitCode, Signal: res.signal, Restarts: n, Stderr: res.stderr}
	r.mu.Lock()
	stopping := r.isStopping()
	switch {
	case res.killed:
		if r.mu.killErr == nil {
			r.mu.killErr = ne
		}
		r.mu.Unlock()
		return
	case stopping:
		r.mu.Unlock()
		if !stopError(res.err) {
			r.log.Warn("node returned an error while stopping", "node", u.id.String(), "err", firstLine(res.err))
		}
		return
	}
	if r.mu.failure == nil {
		r.mu.failure = ne
	}
	r.mu.Unlock()
	attrs := []any{"node", u.id.String(), "err", firstLine(res.err)}
	if res.signal != "" {
		attrs = append(attrs, "signal", res.signal)
	} else if res.exitCode != 0 {
		attrs = append(attrs, "exit_code", res.exitCode)
	}
	r.log.Error("node failed; stopping the program", attrs...)
	r.stop(nil)
}

// stopError reports whether err is what a node typically returns because
// it was stopped: a cancelled context, or a call cancelled with it.
func stopError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, program.ErrStopped) ||
		status.Code(err) == codes.Canceled
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// finish waits for every unit (in-process nodes abandoned after the grace
// period count as ended), releases the backend and sets the result.
func (r *Run) finish(stopSignals func(), stopCtx func() bool) {
	r.wg.Wait()
	close(r.allDone)
	stopCtx()
	// From now on Stop does nothing, and address lookups fail.
	r.stopOnce.Do(func() { close(r.stopping) })
	stopSignals()
	r.bg.Wait()
	r.be.close()
	r.mu.Lock()
	switch {
	case r.mu.failure != nil:
		r.mu.result = r.mu.failure
	case r.mu.stopCause != nil:
		r.mu.result = r.mu.stopCause
	case r.mu.killErr != nil:
		r.mu.result = r.mu.killErr
	}
	r.mu.Unlock()
	close(r.done)
}

// handleSignals makes SIGINT and SIGTERM stop the program (a second one
// kills it) if enabled; it returns the function undoing that.
func (r *Run) handleSignals() func() {
	if !*r.o.signals {
		return func() {}
	}
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		n := 0
		for {
			select {
			case sig := <-ch:
				n++
				if n == 1 {
					r.log.Warn("stopping the program; signal again to kill it", "signal", sig.String())
					r.stop(fmt.Errorf("%w by signal %v", ErrInterrupted, sig))
				} else {
					r.killNow("second signal " + sig.String())
				}
			case <-quit:
				return
			}
		}
	})
	return func() {
		signal.Stop(ch)
		close(quit)
		wg.Wait()
	}
}
