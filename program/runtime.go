package program

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Env connects a running program to its launcher. Launchers implement it
// (package launch does); programs' authors do not need it.
//
// All methods are called concurrently, from node goroutines.
type Env interface {
	// Listen returns a listener for the serving node id: a loopback port
	// the kernel picks, or the node's previous address when it is
	// restarted.
	Listen(ctx context.Context, id NodeID) (net.Listener, error)
	// Register records that node id serves at addr. Nodes register right
	// after binding, before they are constructed, so that dereferencing
	// handles never waits for a cycle.
	Register(ctx context.Context, id NodeID, addr string) error
	// Resolve returns the address of node id, waiting until it has
	// registered, ctx ends or the program stops.
	Resolve(ctx context.Context, id NodeID) (string, error)
	// Stop asks the launcher to stop the whole program. It does not wait.
	Stop()
}

// binding is a program bound to a launcher's Env.
type binding struct {
	p       *Program
	env     Env
	clients clientSet // clients of Handle.Dereference calls
}

// clientSet owns clients and closes them.
type clientSet struct {
	mu      sync.Mutex
	closers []io.Closer
	closed  bool
}

// add adds c; if the set is already closed, it closes c and returns false.
func (s *clientSet) add(c io.Closer) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return false
	}
	s.closers = append(s.closers, c)
	s.mu.Unlock()
	return true
}

func (s *clientSet) close() {
	s.mu.Lock()
	cs := s.closers
	s.closers, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// Bind connects p to a launcher: from now on handles of p dereference
// through env, and Run may run p's nodes. unbind closes the clients
// Handle.Dereference made and disconnects p; call it when the launch ends.
// A program is bound to one launcher at a time.
func (p *Program) Bind(env Env) (unbind func(), err error) {
	if env == nil {
		return nil, errors.New("program: Bind: nil Env")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.rt != nil {
		return nil, fmt.Errorf("program: %q is already launched", p.name)
	}
	rt := &binding{p: p, env: env}
	p.mu.rt = rt
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.mu.rt == rt {
				p.mu.rt = nil
			}
			p.mu.Unlock()
			rt.clients.close()
		})
	}, nil
}

func (p *Program) binding() *binding {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.rt
}

// Stop asks the launcher running p to stop the whole program: every node's
// context ends, then the launcher stops the nodes that do not return (see
// package launch). It works from any goroutine, inside a node or not, in
// every launch type, and does not wait. It does nothing if p is not
// launched.
func (p *Program) Stop() {
	if rt := p.binding(); rt != nil {
		rt.env.Stop()
	}
}

// dereference returns a new client of e; the binding owns it until unbind.
func (rt *binding) dereference(ctx context.Context, e *entry) (any, error) {
	return rt.dereferenceInto(ctx, e, &rt.clients)
}

// dereferenceInto returns a new client of e, owned by set.
func (rt *binding) dereferenceInto(ctx context.Context, e *entry, set *clientSet) (any, error) {
	if !e.node.addressable() {
		return nil, fmt.Errorf("%w: %s is a %s node", ErrNoClient, e.id, e.node.kind)
	}
	addr, err := rt.env.Resolve(ctx, e.id)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", e.id, err)
	}
	c, closer, err := e.node.impl.dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", e.id, addr, err)
	}
	if !set.add(closer) {
		return nil, fmt.Errorf("dereference %s: %w", e.id, ErrStopped)
	}
	return c, nil
}

// RunOption configures Run.
type RunOption interface{ apply(*runCtx) }

type runOptionFunc func(*runCtx)

func (f runOptionFunc) apply(rc *runCtx) { f(rc) }

// DisableRun makes Run start the node without its run, Launchpad's
// disable_run, for tests: a function node returns at once without calling
// its function; a courier node is constructed and serves, but its Run
// method is not called. Colocations pass it to their members.
func DisableRun() RunOption { return runOptionFunc(func(rc *runCtx) { rc.disableRun = true }) }

// runCtx is what a running node needs from the runtime.
type runCtx struct {
	rt         *binding
	e          *entry
	disableRun bool
}

// Run runs node id of p (a node added with AddNode, or a colocation member)
// in the calling goroutine until it ends, and returns its error. ctx is the
// node context: the launcher cancels it, with cause ErrStopped, to stop the
// node. Panics of node code are returned as *PanicError. p must be bound
// (Bind) and valid (Validate).
func (p *Program) Run(ctx context.Context, id NodeID, opts ...RunOption) error {
	rt := p.binding()
	if rt == nil {
		return fmt.Errorf("%w: run %s", ErrNotLaunched, id)
	}
	e, err := p.lookup(id)
	if err != nil {
		return err
	}
	rc := runCtx{rt: rt, e: e}
	for _, o := range opts {
		o.apply(&rc)
	}
	return rt.runEntry(ctx, e, rc.disableRun)
}

func (rt *binding) runEntry(ctx context.Context, e *entry, disableRun bool) error {
	ctx = withNode(ctx, e.id, rt)
	return e.node.impl.run(ctx, &runCtx{rt: rt, e: e, disableRun: disableRun})
}

// --- Node context -------------------------------------------------------

type nodeKey struct{}

type nodeValue struct {
	id NodeID
	rt *binding
}

func withNode(ctx context.Context, id NodeID, rt *binding) context.Context {
	return context.WithValue(ctx, nodeKey{}, nodeValue{id: id, rt: rt})
}

// NodeFromContext returns the ID of the node whose context ctx is (or
// derives from): the context given to node functions, constructors, Run
// methods and courier RPC methods. It is how a node learns its label and
// index (its rank in its group).
func NodeFromContext(ctx context.Context) (NodeID, bool) {
	v, ok := ctx.Value(nodeKey{}).(nodeValue)
	return v.id, ok
}

// ErrNotNodeContext is returned by Stop when ctx does not come from a node.
var ErrNotNodeContext = errors.New("program: not a node context (use Program.Stop)")

// Stop asks the launcher to stop the program that the node owning ctx
// belongs to (see Program.Stop). ctx is a node context or derives from one:
// the context of a node function, constructor, Run method or courier RPC
// method. It does not wait; the node's context ends once the stop reaches
// it. Outside nodes, call Program.Stop.
func Stop(ctx context.Context) error {
	v, ok := ctx.Value(nodeKey{}).(nodeValue)
	if !ok {
		return ErrNotNodeContext
	}
	v.rt.env.Stop()
	return nil
}

// Stopping reports whether ctx ended because the program is stopping.
func Stopping(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrStopped)
}
