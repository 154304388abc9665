package program

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/replay"
)

// Node is a node that can be added to a program; C is the client its handle
// dereferences to. The node kinds of this package implement it:
// *FuncNode, *CourierNode, *ReplayNode, *ThreadColocation and
// *ProcessColocation.
type Node[C any] interface {
	// Handle returns the node's handle. For a node inside a colocation,
	// this is how to get its handle; it is usable once the colocation is
	// added.
	Handle() Handle[C]
	base() *nodeBase
}

// Member is a node that can be placed in a colocation: a function,
// courier or replay node.
type Member interface {
	base() *nodeBase
	member()
}

// nodeBase is what every node kind shares.
type nodeBase struct {
	kind       Kind
	entry      *entry // set by AddNode
	errs       []error
	clientType reflect.Type
	members    []*nodeBase // colocations
	impl       nodeImpl
}

type nodeImpl interface {
	// run runs the node until it ends; ctx is its node context.
	run(ctx context.Context, rc *runCtx) error
	// handles returns the nodes whose handles the node takes.
	handles() []*nodeBase
	// dial returns a client of the node served at addr.
	dial(ctx context.Context, addr string) (client any, closer io.Closer, err error)
}

func (b *nodeBase) base() *nodeBase { return b }

func (b *nodeBase) handles() []*nodeBase { return b.impl.handles() }

func (b *nodeBase) addressable() bool { return b.kind == KindCourier || b.kind == KindReplay }

// Drain bounds how long a serving node waits, once stopped, for the calls in
// flight before it cuts them.
const Drain = time.Second

// --- Function node ------------------------------------------------------

// FuncNode runs a function, Launchpad's PyNode. Make it with NewFuncNode.
type FuncNode struct {
	nodeBase
	call *callable
}

// NewFuncNode returns a node that calls fn(args...) when it runs. Handles
// among args (also in slices, arrays and map values) are dereferenced first:
// fn's parameter gets the client (a Handle[*courier.Client] argument fits a
// *courier.Client parameter, a []Handle[C] argument a []C parameter). If fn's
// first parameter is a context.Context, it gets the node context, which ends
// when the program stops. fn returns nothing or an error; the node ends
// when fn returns.
//
// Arguments are checked against fn's parameters now; a mismatch is reported
// by Program.Validate and Launch.
func NewFuncNode(fn any, args ...any) *FuncNode {
	n := &FuncNode{}
	n.kind = KindFunc
	n.clientType = clientTypeOf[None]()
	n.impl = n
	c, err := newCallable("function", fn, args)
	if err == nil {
		ft := c.fn.Type()
		if ft.NumOut() > 1 || (ft.NumOut() == 1 && ft.Out(0) != errorType) {
			err = fmt.Errorf("function %v must return nothing or an error", ft)
		}
	}
	if err != nil {
		n.errs = append(n.errs, err)
		c = nil
	}
	n.call = c
	return n
}

// Handle returns the node's handle; it cannot be dereferenced.
func (n *FuncNode) Handle() Handle[None] { return Handle[None]{n: &n.nodeBase} }

func (n *FuncNode) member() {}

func (n *FuncNode) handles() []*nodeBase { return n.call.handles() }

func (n *FuncNode) dial(context.Context, string) (any, io.Closer, error) {
	return nil, nil, ErrNoClient
}

func (n *FuncNode) run(ctx context.Context, rc *runCtx) error {
	if n.call == nil {
		return errors.Join(n.errs...)
	}
	if rc.disableRun {
		return nil
	}
	set := &clientSet{}
	defer set.close()
	args, err := n.call.values(ctx, rc.rt, set)
	if err != nil {
		return err
	}
	out, err := n.call.call(args)
	if err != nil {
		return err
	}
	return resultErr(out)
}

// --- Courier node -------------------------------------------------------

// CourierNode serves an object's exported methods over courier,
// Launchpad's CourierNode. Make it with NewCourierNode.
type CourierNode struct {
	nodeBase
	ctor       *callable
	serverOpts []courier.ServerOption
	clientOpts []courier.Option
}

// NewCourierNode returns a node that builds an object with ctor(args...)
// and serves its exported methods with courier. ctor returns the object, or
// the object and an error. Arguments are handled as by NewFuncNode: handles
// are dereferenced before construction, and a first context.Context
// parameter gets the node context.
//
// When the node runs it binds a loopback port the kernel picks, registers
// the address with the launcher, dereferences the handles, constructs the
// object and serves it. If the object has a Run method (of the form
// func([ctx context.Context]) [error]), Run is called once serving starts
// (with the node context) and the node ends when Run returns, stopping the
// server; Run is also served as an RPC, as Launchpad does. Without Run the
// node serves until the program stops.
//
// RPC methods' contexts carry the node, so program.Stop and NodeFromContext
// work inside them.
func NewCourierNode(ctor any, args ...any) *CourierNode {
	n := &CourierNode{}
	n.kind = KindCourier
	n.clientType = clientTypeOf[*courier.Client]()
	n.impl = n
	c, err := newCallable("constructor", ctor, args)
	if err == nil {
		ft := c.fn.Type()
		ok := (ft.NumOut() == 1 && ft.Out(0) != errorType) || (ft.NumOut() == 2 && ft.Out(0) != errorType && ft.Out(1) == errorType)
		if !ok {
			err = fmt.Errorf("constructor %v must return T or (T, error)", ft)
		} else if _, _, _, err2 := runMethod(ft.Out(0)); err2 != nil {
			err = err2
		}
	}
	if err != nil {
		n.errs = append(n.errs, err)
		c = nil
	}
	n.ctor = c
	return n
}

// WithServerOptions adds options for the node's courier server, for
// example courier.WithBatching. It returns n.
func (n *CourierNode) WithServerOptions(opts ...courier.ServerOption) *CourierNode {
	n.serverOpts = append(n.serverOpts, opts...)
	return n
}

// WithClientOptions adds options used when the node's handle is
// dereferenced (courier.Dial), for example courier.WithCallTimeout. It
// returns n.
func (n *CourierNode) WithClientOptions(opts ...courier.Option) *CourierNode {
	n.clientOpts = append(n.clientOpts, opts...)
	return n
}

// Handle returns the node's handle; it dereferences to a *courier.Client.
func (n *CourierNode) Handle() Handle[*courier.Client] {
	return Handle[*courier.Client]{n: &n.nodeBase}
}

func (n *CourierNode) member() {}

func (n *CourierNode) handles() []*nodeBase { return n.ctor.handles() }

func (n *CourierNode) dial(ctx context.Context, addr string) (any, io.Closer, error) {
	c, err := courier.Dial(ctx, addr, n.clientOpts...)
	if err != nil {
		return nil, nil, err
	}
	return c, c, nil
}

// runMethod checks the Run method of t, if any, and returns its index and
// whether it takes a context; ok is false if there is none.
func runMethod(t reflect.Type) (index int, takesCtx, ok bool, err error) {
	m, ok := t.MethodByName("Run")
	if !ok {
		return 0, false, false, nil
	}
	ft := m.Type
	var params []reflect.Type
	for i := 0; i < ft.NumIn(); i++ {
		params = append(params, ft.In(i))
	}
	if t.Kind() != reflect.Interface {
		params = params[1:] // the receiver
	}
	okIn := len(params) == 0 || (len(params) == 1 && params[0] == contextType)
	okOut := ft.NumOut() == 0 || (ft.NumOut() == 1 && ft.Out(0) == errorType)
	if !okIn || !okOut || ft.IsVariadic() {
		return 0, false, false, fmt.Errorf("%v has a Run method of type %v: want func([ctx context.Context]) [error]", t, ft)
	}
	return m.Index, len(params) == 1, true, nil
}

func (n *CourierNode) run(ctx context.Context, rc *runCtx) (err error) {
	if n.ctor == nil {
		return errors.Join(n.errs...)
	}
	id := rc.e.id
	lis, err := rc.rt.env.Listen(ctx, id)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer lis.Close()
	if err := rc.rt.env.Register(ctx, id, lis.Addr().String()); err != nil {
		return fmt.Errorf("register address: %w", err)
	}
	set := &clientSet{}
	defer set.close()
	args, err := n.ctor.values(ctx, rc.rt, set)
	if err != nil {
		return err
	}
	out, err := n.ctor.call(args)
	if err != nil {
		return err
	}
	if err := resultErr(out); err != nil {
		return fmt.Errorf("constructor: %w", err)
	}
	obj := out[0]
	if (obj.Kind() == reflect.Pointer || obj.Kind() == reflect.Interface) && obj.IsNil() {
		return fmt.Errorf("constructor returned a nil %v", obj.Type())
	}
	obj = reflect.ValueOf(obj.Interface()) // the dynamic value, if T is an interface
	runIndex, runCtx, hasRun, err := runMethod(obj.Type())
	if err != nil {
		return err
	}
	inject := func(c context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(withNode(c, id, rc.rt), req)
	}
	opts := append([]courier.ServerOption{
		courier.WithGRPCServerOptions(grpc.ChainUnaryInterceptor(inject)),
	}, n.serverOpts...)
	srv, err := courier.NewServer(obj.Interface(), opts...)
	if err != nil {
		return err
	}
	return serve(ctx, lis, srv.Serve, func() { stopCourier(srv) }, func(ctx context.Context) error {
		if !hasRun || rc.disableRun {
			<-ctx.Done()
			return nil
		}
		var args []reflect.Value
		if runCtx {
			args = append(args, reflect.ValueOf(&ctx).Elem())
		}
		out, err := (&callable{fn: obj.Method(runIndex)}).call(args)
		if err != nil {
			return err
		}
		if err := resultErr(out); err != nil {
			return fmt.Errorf("Run: %w", err)
		}
		return nil
	})
}

// serve runs serveFn(lis) and body concurrently; when body returns it stops
// the server with stop and waits for serveFn. If serving fails first, body's
// context is cancelled with the error, and body is waited for.
func serve(ctx context.Context, lis net.Listener, serveFn func(net.Listener) error, stop func(), body func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serveFn(lis) }()
	bodyErr := make(chan error, 1)
	go func() { bodyErr <- body(ctx) }()
	var err error
	select {
	case err = <-bodyErr:
		stop()
		if serr := <-serveErr; serr != nil && err == nil {
			err = fmt.Errorf("serve: %w", serr)
		}
	case serr := <-serveErr:
		if serr == nil {
			serr = errors.New("server stopped unexpectedly")
		}
		err = fmt.Errorf("serve: %w", serr)
		cancel(err)
		stop()
		<-bodyErr
	}
	return err
}

// stopCourier stops srv gracefully, cutting calls still running after Drain.
func stopCourier(srv *courier.Server) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(Drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
}

// --- Replay node --------------------------------------------------------

// ReplayNode serves replay tables, Launchpad's ReverbNode. Make it with
// NewReplayNode.
type ReplayNode struct {
	nodeBase
	opts       replay.ServerOptions
	clientOpts []replay.Option
}

// NewReplayNode returns a node serving a replay server with opts. When it
// runs it builds the server, binds a loopback port the kernel picks,
// registers it and serves until the program stops, then shuts the server
// down (insert streams are acknowledged, samplers see Unavailable). Its
// handle dereferences to a *replay.Client.
func NewReplayNode(opts replay.ServerOptions) *ReplayNode {
	n := &ReplayNode{opts: opts}
	n.kind = KindReplay
	n.clientType = clientTypeOf[*replay.Client]()
	n.impl = n
	check := opts
	if err := check.Validate(); err != nil {
		n.errs = append(n.errs, err)
	}
	return n
}

// WithClientOptions adds options used when the node's handle is
// dereferenced (replay.Dial). It returns n.
func (n *ReplayNode) WithClientOptions(opts ...replay.Option) *ReplayNode {
	n.clientOpts = append(n.clientOpts, opts...)
	return n
}

// Handle returns the node's handle; it dereferences to a *replay.Client,
// waiting until the server is reachable.
func (n *ReplayNode) Handle() Handle[*replay.Client] {
	return Handle[*replay.Client]{n: &n.nodeBase}
}

func (n *ReplayNode) member() {}

func (n *ReplayNode) handles() []*nodeBase { return nil }

func (n *ReplayNode) dial(ctx context.Context, addr string) (any, io.Closer, error) {
	c, err := replay.Dial(ctx, addr, n.clientOpts...)
	if err != nil {
		return nil, nil, err
	}
	return c, c, nil
}

func (n *ReplayNode) run(ctx context.Context, rc *runCtx) error {
	if len(n.errs) > 0 {
		return errors.Join(n.errs...)
	}
	srv, err := replay.NewServer(n.opts)
	if err != nil {
		return err
	}
	lis, err := rc.rt.env.Listen(ctx, rc.e.id)
	if err != nil {
		srv.Stop()
		return fmt.Errorf("listen: %w", err)
	}
	defer lis.Close()
	if err := rc.rt.env.Register(ctx, rc.e.id, lis.Addr().String()); err != nil {
		srv.Stop()
		return fmt.Errorf("register address: %w", err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), Drain)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return serve(ctx, lis, srv.Serve, stop, func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
}

// --- Colocations --------------------------------------------------------

// ThreadColocation runs its members in one process, each in its own
// goroutine, Launchpad's MultiThreadingColocation. Make it with
// NewThreadColocation.
type ThreadColocation struct {
	nodeBase
	first bool
}

// NewThreadColocation returns a node that runs members together in one
// process (under local_mp, one child process). Members keep their own IDs,
// label/index/member, addresses and handles (get them with each member's
// Handle method). The colocation ends when every member has ended; the first
// member error cancels the others' contexts and is returned.
func NewThreadColocation(members ...Member) *ThreadColocation {
	n := &ThreadColocation{}
	initColocation(&n.nodeBase, KindThreadColocation, members)
	n.impl = n
	return n
}

// ReturnOnFirstCompleted makes the colocation end as soon as one member
// ends, cancelling the others. It returns n.
func (n *ThreadColocation) ReturnOnFirstCompleted() *ThreadColocation {
	n.first = true
	return n
}

// Handle returns the colocation's handle; it cannot be dereferenced (use
// the members' handles).
func (n *ThreadColocation) Handle() Handle[None] { return Handle[None]{n: &n.nodeBase} }

// handles is empty: Validate walks the members' handles itself.
func (n *ThreadColocation) handles() []*nodeBase { return nil }

func (n *ThreadColocation) dial(context.Context, string) (any, io.Closer, error) {
	return nil, nil, ErrNoClient
}

func (n *ThreadColocation) run(ctx context.Context, rc *runCtx) error {
	return runMembers(ctx, rc, n.first)
}

// ProcessColocation runs each member in its own process on one machine,
// Launchpad's MultiProcessingColocation. Make it with
// NewProcessColocation.
type ProcessColocation struct {
	nodeBase
}

// NewProcessColocation returns a node whose members each get their own
// process under local_mp (a child process per member, supervised and
// restarted like any node, with the colocation's label); under local_mt
// and test_mt they run as goroutines, as in a ThreadColocation. Members
// keep their own IDs (label/index/member), addresses and handles.
func NewProcessColocation(members ...Member) *ProcessColocation {
	n := &ProcessColocation{}
	initColocation(&n.nodeBase, KindProcessColocation, members)
	n.impl = n
	return n
}

// Handle returns the colocation's handle; it cannot be dereferenced (use
// the members' handles).
func (n *ProcessColocation) Handle() Handle[None] { return Handle[None]{n: &n.nodeBase} }

// handles is empty: Validate walks the members' handles itself.
func (n *ProcessColocation) handles() []*nodeBase { return nil }

func (n *ProcessColocation) dial(context.Context, string) (any, io.Closer, error) {
	return nil, nil, ErrNoClient
}

func (n *ProcessColocation) run(ctx context.Context, rc *runCtx) error {
	return runMembers(ctx, rc, false)
}

func initColocation(b *nodeBase, kind Kind, members []Member) {
	b.kind = kind
	b.clientType = clientTypeOf[None]()
	if len(members) == 0 {
		b.errs = append(b.errs, fmt.Errorf("%s without members", kind))
	}
	seen := map[*nodeBase]bool{}
	for i, m := range members {
		if m == nil {
			b.errs = append(b.errs, fmt.Errorf("%s: member %d is nil", kind, i))
			continue
		}
		mb := m.base()
		if seen[mb] {
			b.errs = append(b.errs, fmt.Errorf("%s: member %d appears twice", kind, i))
			continue
		}
		seen[mb] = true
		b.members = append(b.members, mb)
		for _, err := range mb.errs {
			b.errs = append(b.errs, fmt.Errorf("member %d: %w", i, err))
		}
	}
}

// runMembers runs rc's members concurrently and waits for all of them.
func runMembers(ctx context.Context, rc *runCtx, returnOnFirst bool) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, m := range rc.e.members {
		wg.Go(func() {
			err := rc.rt.runEntry(ctx, m, rc.disableRun)
			if err != nil {
				err = fmt.Errorf("%s: %w", m.id, err)
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				cancel(err)
			} else if returnOnFirst {
				cancel(nil)
			}
		})
	}
	wg.Wait()
	return first
}
