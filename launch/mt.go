package launch

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/recall-rl/recall/program"
)

// mtBackend runs every node in this process (local_mt, test_mt).
type mtBackend struct {
	r      *Run
	unbind func()
	// root is the parent of every node context: it has the values of
	// Launch's context, and is cancelled with program.ErrStopped when the
	// stop begins (not when Launch's context ends: that begins the stop).
	root   context.Context
	cancel context.CancelCauseFunc

	abandonOnce sync.Once
	abandoned   chan struct{}
}

func newMTBackend(r *Run) error {
	b := &mtBackend{r: r, abandoned: make(chan struct{})}
	b.root, b.cancel = context.WithCancelCause(context.WithoutCancel(r.ctx))
	r.be = b
	unbind, err := r.p.Bind(&mtEnv{r: r})
	if err != nil {
		b.cancel(err)
		return err
	}
	b.unbind = unbind
	return nil
}

func (b *mtBackend) attempt(u *unit, n int) result {
	var opts []program.RunOption
	if u.disabled {
		opts = append(opts, program.DisableRun())
	}
	done := make(chan error, 1)
	go func() { done <- b.r.p.Run(b.root, u.id, opts...) }()
	select {
	case err := <-done:
		return result{err: err}
	case <-b.abandoned:
		return result{err: fmt.Errorf("%w %v; abandoned, its goroutines still run", ErrGraceExceeded, b.r.o.grace), killed: true}
	}
}

func (b *mtBackend) beginStop() { b.cancel(program.ErrStopped) }

func (b *mtBackend) kill() { b.abandonOnce.Do(func() { close(b.abandoned) }) }

func (b *mtBackend) close() {
	b.cancel(program.ErrStopped)
	if b.unbind != nil {
		b.unbind()
	}
}

// mtEnv is the program.Env of an in-process launch.
type mtEnv struct{ r *Run }

func (e *mtEnv) Listen(_ context.Context, id program.NodeID) (net.Listener, error) {
	return listen(e.r.table.get(id.String()))
}

func (e *mtEnv) Register(_ context.Context, id program.NodeID, addr string) error {
	return e.r.table.set(id.String(), addr)
}

func (e *mtEnv) Resolve(ctx context.Context, id program.NodeID) (string, error) {
	return e.r.table.wait(ctx, id.String(), e.r.stopping)
}

func (e *mtEnv) Stop() { e.r.Stop() }
