package courier

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type batchSpec struct {
	method      string
	batchMethod string
	size        int
	timeout     time.Duration
}

// batcher gathers concurrent calls of one method into calls of its batch
// method. One gatherer goroutine (run) owns the batching; callers hand it
// their decoded arguments through in and wait on their own buffered done
// channel, so neither side can block the other forever.
type batcher struct {
	spec       batchSpec
	srv        *Server
	fn         reflect.Value // bound batch method
	hasCtx     bool
	hasErr     bool
	hasResult  bool
	sliceTypes []reflect.Type // the batch method's slice parameters
	in         chan *batchCall
}

type batchCall struct {
	ctx  context.Context
	args []reflect.Value
	done chan batchResult // buffered: the gatherer never blocks on it
}

type batchResult struct {
	v   reflect.Value
	err error
}

// newBatchedMethod validates spec against obj and builds the per-call RPC.
func newBatchedMethod(s *Server, obj reflect.Value, spec batchSpec, exclude map[string]bool) (*method, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("courier: WithBatching(%q, %q): %s", spec.method, spec.batchMethod, fmt.Sprintf(format, args...))
	}
	if spec.method == "" {
		return nil, fail("empty method name")
	}
	if spec.size < 1 {
		return nil, fail("batch size %d is less than 1", spec.size)
	}
	if spec.timeout < 0 {
		return nil, fail("negative timeout %v", spec.timeout)
	}
	if m, ok := s.methods[spec.method]; ok && m.batch != nil {
		return nil, fail("method %s is batched twice", spec.method)
	}
	bm, ok := obj.Type().MethodByName(spec.batchMethod)
	if !ok {
		return nil, fail("%s has no exported method %s", obj.Type(), spec.batchMethod)
	}
	fn := obj.Method(bm.Index)
	sig, err := parseSignature(spec.batchMethod, fn.Type())
	if err != nil {
		return nil, fail("%v", err)
	}
	if sig.variadic {
		return nil, fail("batch method %s is variadic", spec.batchMethod)
	}
	if len(sig.params) == 0 {
		return nil, fail("batch method %s takes no slice arguments", spec.batchMethod)
	}
	b := &batcher{
		spec: spec, srv: s, fn: fn, hasCtx: sig.hasCtx, hasErr: sig.hasErr,
		hasResult: sig.result != nil, sliceTypes: sig.params, in: make(chan *batchCall),
	}
	m := &method{name: spec.method, batch: b}
	m.plans.limit = maxPlansPerMethod
	descs := make([]string, len(sig.params))
	for i, pt := range sig.params {
		if pt.Kind() != reflect.Slice {
			return nil, fail("parameter %d of %s is %s, not a slice", sig.paramIndex(i), spec.batchMethod, pt)
		}
		c, err := codecFor(pt.Elem())
		if err != nil {
			return nil, fail("parameter %d of %s: %v", sig.paramIndex(i), spec.batchMethod, err)
		}
		m.params = append(m.params, c)
		descs[i] = c.desc
	}
	m.sig = strings.Join(descs, ",")
	if sig.result != nil {
		if sig.result.Kind() != reflect.Slice {
			return nil, fail("result of %s is %s, not a slice", spec.batchMethod, sig.result)
		}
		if m.result, err = codecFor(sig.result.Elem()); err != nil {
			return nil, fail("result of %s: %v", spec.batchMethod, err)
		}
	}
	// A same-named method must have the per-call signature.
	if single, ok := s.methods[spec.method]; ok && !exclude[spec.method] {
		same := single.sig == m.sig && !single.variadic
		if (single.result == nil) != (m.result == nil) || single.result != nil && single.result.typ != m.result.typ {
			same = false
		}
		for i := range single.params {
			if !same || single.params[i].typ != m.params[i].typ {
				same = false
				break
			}
		}
		if !same {
			return nil, fail("method %s has signature %s, want %s", spec.method, single.info(), m.info())
		}
	}
	return m, nil
}

// submit hands one call's arguments to the gatherer and waits for its result.
func (b *batcher) submit(ctx context.Context, stop <-chan struct{}, args []reflect.Value) (reflect.Value, error) {
	c := &batchCall{ctx: ctx, args: args, done: make(chan batchResult, 1)}
	select {
	case b.in <- c:
	case <-ctx.Done():
		return reflect.Value{}, status.FromContextError(ctx.Err()).Err()
	case <-stop:
		return reflect.Value{}, errStopping
	}
	select {
	case r := <-c.done:
		return r.v, r.err
	case <-ctx.Done():
		return reflect.Value{}, status.FromContextError(ctx.Err()).Err()
	}
}

var errStopping = status.Error(codes.Unavailable, "courier: server is stopping")

// run gathers and executes batches until stop is closed. Calls it has
// accepted always get a result.
func (b *batcher) run(ctx context.Context, stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	batch := make([]*batchCall, 0, b.spec.size)
	for {
		batch = batch[:0]
		select {
		case <-stop:
			return
		case c := <-b.in:
			batch = append(batch, c)
		}
		if b.spec.timeout > 0 {
			timer.Reset(b.spec.timeout)
		}
	gather:
		for len(batch) < b.spec.size {
			if b.spec.timeout == 0 {
				select {
				case c := <-b.in:
					batch = append(batch, c)
				default:
					break gather
				}
				continue
			}
			select {
			case c := <-b.in:
				batch = append(batch, c)
			case <-timer.C:
				break gather
			case <-stop:
				for _, c := range batch {
					c.done <- batchResult{err: errStopping}
				}
				return
			}
		}
		timer.Stop()
		b.execute(ctx, batch)
	}
}

// execute runs one batch and sends each caller its result.
func (b *batcher) execute(parent context.Context, batch []*batchCall) {
	live := batch[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- batchResult{err: status.FromContextError(err).Err()}
			continue
		}
		live = append(live, c)
	}
	n := len(live)
	if n == 0 {
		return
	}
	// The batch's context ends when every caller has gone.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var left atomic.Int64
	left.Store(int64(n))
	stops := make([]func() bool, n)
	for i, c := range live {
		stops[i] = context.AfterFunc(c.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()

	args := make([]reflect.Value, 0, len(b.sliceTypes)+1)
	if b.hasCtx {
		args = append(args, reflect.ValueOf(ctx))
	}
	for j, st := range b.sliceTypes {
		s := reflect.MakeSlice(st, n, n)
		for i, c := range live {
			s.Index(i).Set(c.args[j])
		}
		args = append(args, s)
	}
	results, err := b.call(args)
	if err == nil && b.hasResult && results.Len() != n {
		err = status.Errorf(codes.Internal, "courier: %s returned %d results for a batch of %d calls",
			b.spec.batchMethod, results.Len(), n)
	}
	for i, c := range live {
		r := batchResult{err: err}
		if err == nil && b.hasResult {
			r.v = results.Index(i)
		}
		c.done <- r
	}
}

// call invokes the batch method, turning panics and errors into status
// errors.
func (b *batcher) call(args []reflect.Value) (results reflect.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = b.srv.panicError(b.spec.batchMethod, r)
		}
	}()
	out := b.fn.Call(args)
	if b.hasErr {
		if e := out[len(out)-1]; !e.IsNil() {
			return reflect.Value{}, toStatus(e.Interface().(error))
		}
	}
	if b.hasResult {
		results = out[0]
	}
	return results, nil
}
