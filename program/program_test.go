package program_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/program"
	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEnv is a minimal launcher: an address table and a stop counter.
type fakeEnv struct {
	mu      sync.Mutex
	addrs   map[string]string
	changed chan struct{}
	stops   int
}

func newFakeEnv() *fakeEnv { return &fakeEnv{addrs: map[string]string{}, changed: make(chan struct{})} }

func (e *fakeEnv) Listen(context.Context, program.NodeID) (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}

func (e *fakeEnv) Register(_ context.Context, id program.NodeID, addr string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addrs[id.String()] = addr
	close(e.changed)
	e.changed = make(chan struct{})
	return nil
}

func (e *fakeEnv) Resolve(ctx context.Context, id program.NodeID) (string, error) {
	for {
		e.mu.Lock()
		addr, ch := e.addrs[id.String()], e.changed
		e.mu.Unlock()
		if addr != "" {
			return addr, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (e *fakeEnv) Stop() {
	e.mu.Lock()
	e.stops++
	e.mu.Unlock()
}

func (e *fakeEnv) stopCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stops
}

// runAll binds p to a fakeEnv and runs the given nodes in goroutines; the
// returned function stops them (cancelling their contexts with
// ErrStopped) and returns their errors by ID.
func runAll(t *testing.T, p *program.Program, ids ...program.NodeID) (*fakeEnv, func() map[string]error) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	env := newFakeEnv()
	unbind, err := p.Bind(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := map[string]error{}
	for _, id := range ids {
		wg.Go(func() {
			err := p.Run(ctx, id)
			mu.Lock()
			errs[id.String()] = err
			mu.Unlock()
		})
	}
	var once sync.Once
	stop := func() map[string]error {
		once.Do(func() {
			cancel(program.ErrStopped)
			wg.Wait()
			unbind()
		})
		return errs
	}
	t.Cleanup(func() { stop() })
	return env, stop
}

type Echo struct{}

func (Echo) Ping(x int) int { return x }

func (Echo) Who(ctx context.Context) string {
	id, _ := program.NodeFromContext(ctx)
	return id.String()
}

func (Echo) Stop(ctx context.Context) error { return program.Stop(ctx) }

func newEcho() Echo { return Echo{} }

func TestNodeID(t *testing.T) {
	for _, s := range []string{"a/0", "learner/12", "actors/3/1"} {
		id, err := program.ParseNodeID(s)
		if err != nil || id.String() != s {
			t.Errorf("ParseNodeID(%q) = %v, %v", s, id, err)
		}
	}
	id, _ := program.ParseNodeID("x/1/2")
	if !id.IsMember() || id.Parent() != program.ID("x", 1) {
		t.Errorf("%v: IsMember %v, Parent %v", id, id.IsMember(), id.Parent())
	}
	for _, s := range []string{"", "a", "a/", "/0", "a/-1", "a/0/x", "a/0/1/2"} {
		if _, err := program.ParseNodeID(s); err == nil {
			t.Errorf("ParseNodeID(%q) did not fail", s)
		}
	}
}

func TestProgramStructure(t *testing.T) {
	p := program.New("structure")
	var hs []program.Handle[*courier.Client]
	for range 3 {
		hs = append(hs, program.AddNode(p, "producer", program.NewCourierNode(newEcho)))
	}
	r := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{Tables: []table.Options{{Name: "t"}}}))
	m0, m1 := program.NewCourierNode(newEcho), program.NewFuncNode(func() {})
	program.AddNode(p, "coloc", program.NewThreadColocation(m0, m1))
	program.AddNode(p, "consumer", program.NewFuncNode(func([]*courier.Client, *replay.Client) {}, hs, r))
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Labels(), " "); got != "producer replay coloc consumer" {
		t.Errorf("Labels = %s", got)
	}
	if g := p.Group("producer"); len(g) != 3 || g[2] != program.ID("producer", 2) {
		t.Errorf("Group(producer) = %v", g)
	}
	var lines []string
	for _, ni := range p.Nodes() {
		lines = append(lines, fmt.Sprintf("%s %s %v", ni.ID, ni.Kind, ni.Addressable))
		for _, m := range ni.Members {
			lines = append(lines, fmt.Sprintf("  %s %s %v", m.ID, m.Kind, m.Addressable))
		}
	}
	want := `producer/0 courier true
producer/1 courier true
producer/2 courier true
replay/0 replay true
coloc/0 thread_colocation false
  coloc/0/0 courier true
  coloc/0/1 func false
consumer/0 func false`
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("Nodes:\n%s\nwant:\n%s", got, want)
	}
	if id, ok := m0.Handle().Node(); !ok || id.String() != "coloc/0/0" {
		t.Errorf("member handle node = %v, %v", id, ok)
	}
	if h := hs[1]; h.String() != "Handle(courier producer/1)" {
		t.Errorf("String = %s", h)
	}

	if _, err := program.Lookup[*courier.Client](p, program.ID("producer", 1)); err != nil {
		t.Errorf("Lookup: %v", err)
	}
	if _, err := program.Lookup[*courier.Client](p, program.NodeID{Label: "coloc", Index: 0, Member: 0}); err != nil {
		t.Errorf("Lookup member: %v", err)
	}
	if _, err := program.Lookup[*replay.Client](p, program.ID("producer", 1)); err == nil || !strings.Contains(err.Error(), "dereferences to *courier.Client") {
		t.Errorf("Lookup with the wrong client type = %v", err)
	}
	if _, err := program.Lookup[*courier.Client](p, program.ID("producer", 3)); !errors.Is(err, program.ErrNotFound) {
		t.Errorf("Lookup of a missing node = %v", err)
	}
}

// Launchpad-style mistakes are reported by Validate, all at once.
func TestValidateErrors(t *testing.T) {
	other := program.New("other")
	foreign := program.AddNode(other, "x", program.NewCourierNode(newEcho))
	unadded := program.NewCourierNode(newEcho)

	p := program.New("bad")
	twice := program.NewFuncNode(func() {})
	program.AddNode(p, "ok", twice)
	program.AddNode(p, "again", twice)
	program.AddNode(p, "bad label", program.NewFuncNode(func() {}))
	program.AddNode(p, "count", program.NewFuncNode(func(int, int) {}, 1))
	program.AddNode(p, "type", program.NewFuncNode(func(int) {}, "s"))
	program.AddNode(p, "nil", program.NewFuncNode(func(int) {}, nil))
	program.AddNode(p, "result", program.NewFuncNode(func() int { return 0 }))
	program.AddNode(p, "notfunc", program.NewFuncNode(42))
	program.AddNode(p, "ctor", program.NewCourierNode(func() {}))
	program.AddNode(p, "run", program.NewCourierNode(func() badRun { return badRun{} }))
	r := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{Tables: []table.Options{{Name: "t"}}}))
	program.AddNode(p, "client", program.NewFuncNode(func(*courier.Client) {}, r))
	program.AddNode(p, "foreign", program.NewFuncNode(func(*courier.Client) {}, foreign))
	program.AddNode(p, "unadded", program.NewFuncNode(func(*courier.Client) {}, unadded.Handle()))
	program.AddNode(p, "zero", program.NewFuncNode(func(*courier.Client) {}, program.Handle[*courier.Client]{}))
	fn := program.AddNode(p, "fn", program.NewFuncNode(func() {}))
	program.AddNode(p, "fnhandle", program.NewFuncNode(func(program.None) {}, fn))
	program.AddNode(p, "empty", program.NewThreadColocation())
	program.AddNode(p, "badreplay", program.NewReplayNode(replay.ServerOptions{}))

	err := p.Validate()
	if !errors.Is(err, program.ErrInvalidProgram) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{
		`label "again": the func node is already node ok/0 of program "bad"`,
		`label "bad label"`,
		"count/0: function func(int, int) takes 2 arguments, got 1",
		"type/0: function func(int): argument 1: string is not assignable to int",
		"nil/0: function func(int): argument 1: nil for parameter of type int",
		"result/0: function func() int must return nothing or an error",
		"notfunc/0: function is a int, not a function",
		"ctor/0: constructor func() must return T or (T, error)",
		"run/0: program_test.badRun has a Run method",
		"client/0: function func(*courier.Client): argument 1: Handle[*replay.Client] dereferences to *replay.Client, not assignable to *courier.Client",
		`foreign/0: takes a handle of node x/0 of program "other"`,
		"unadded/0: takes a handle of a courier node that was never added",
		"zero/0: takes a zero Handle",
		"fnhandle/0: takes a handle of fn/0, a func node, which serves nothing",
		"empty/0: thread_colocation without members",
		"badreplay/0: replay: invalid argument: no tables",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("Validate:\n%v", err)
	}
	if err := program.New("empty").Validate(); err == nil || !strings.Contains(err.Error(), "no nodes") {
		t.Errorf("empty program: %v", err)
	}
}

type badRun struct{}

func (badRun) Run(int) {}

func TestFuncNodeDereferencesHandles(t *testing.T) {
	p := program.New("deref")
	var hs []program.Handle[*courier.Client]
	for range 3 {
		hs = append(hs, program.AddNode(p, "echo", program.NewCourierNode(newEcho)))
	}
	type result struct {
		who   []string
		extra []int
	}
	got := make(chan result, 1)
	fn := func(ctx context.Context, one *courier.Client, all []*courier.Client, byName map[string]*courier.Client, arr [2]*courier.Client, extra ...int) error {
		var r result
		for _, c := range append([]*courier.Client{one, byName["b"], arr[1]}, all...) {
			who, err := courier.CallT[string](ctx, c, "Who")
			if err != nil {
				return err
			}
			r.who = append(r.who, who)
		}
		r.extra = extra
		got <- r
		return nil
	}
	program.AddNode(p, "user", program.NewFuncNode(fn, hs[0], hs,
		map[string]program.Handle[*courier.Client]{"b": hs[1]}, [2]program.Handle[*courier.Client]{hs[2], hs[1]}, 7, 8))
	_, stop := runAll(t, p, program.ID("echo", 0), program.ID("echo", 1), program.ID("echo", 2), program.ID("user", 0))
	select {
	case r := <-got:
		if w := strings.Join(r.who, " "); w != "echo/0 echo/1 echo/1 echo/0 echo/1 echo/2" || fmt.Sprint(r.extra) != "[7 8]" {
			t.Errorf("got %v %v", w, r.extra)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the function node did not run")
	}
	for id, err := range stop() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// Runner is a courier object with a Run method.
type Runner struct {
	ran chan struct{}
	err error
}

func (r *Runner) Run(ctx context.Context) error {
	close(r.ran)
	if r.err != nil {
		return r.err
	}
	<-ctx.Done()
	return nil
}

func (r *Runner) Ping(x int) int { return x }

func TestCourierNodeRun(t *testing.T) {
	boom := errors.New("boom")
	p := program.New("run")
	failing := &Runner{ran: make(chan struct{}), err: boom}
	program.AddNode(p, "failing", program.NewCourierNode(func() *Runner { return failing }))
	serving := &Runner{ran: make(chan struct{})}
	h := program.AddNode(p, "serving", program.NewCourierNode(func(ctx context.Context) (*Runner, error) {
		if id, _ := program.NodeFromContext(ctx); id.String() != "serving/0" {
			return nil, fmt.Errorf("constructor context of %v", id)
		}
		return serving, nil
	}))
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	env := newFakeEnv()
	unbind, err := p.Bind(env)
	if err != nil {
		t.Fatal(err)
	}
	defer unbind()
	if _, err := p.Bind(env); err == nil {
		t.Error("a second Bind did not fail")
	}

	// Run returning an error ends the node with it.
	if err := p.Run(context.Background(), program.ID("failing", 0)); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want boom", err)
	}

	// A node serves while its Run runs, and Run gets the node context.
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, program.ID("serving", 0)) }()
	<-serving.ran
	c, err := h.Dereference(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := courier.CallT[int](context.Background(), c, "Ping", 3); err != nil || v != 3 {
		t.Errorf("Ping = %v, %v", v, err)
	}
	cancel(program.ErrStopped)
	if err := <-done; err != nil {
		t.Errorf("Run after stop = %v", err)
	}
}

func TestDisableRun(t *testing.T) {
	p := program.New("disabled")
	r := &Runner{ran: make(chan struct{})}
	h := program.AddNode(p, "runner", program.NewCourierNode(func() *Runner { return r }))
	called := false
	program.AddNode(p, "fn", program.NewFuncNode(func() { called = true }))
	unbind, err := p.Bind(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer unbind()
	if err := p.Run(context.Background(), program.ID("fn", 0), program.DisableRun()); err != nil || called {
		t.Errorf("disabled function node: %v, called %v", err, called)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, program.ID("runner", 0), program.DisableRun()) }()
	c, err := h.Dereference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := courier.CallT[int](ctx, c, "Ping", 1); err != nil {
		t.Error(err)
	}
	// Run is an RPC too, for tests to call.
	go func() { _, _ = c.Call(ctx, "Run") }()
	<-r.ran
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestStop(t *testing.T) {
	if err := program.Stop(context.Background()); !errors.Is(err, program.ErrNotNodeContext) {
		t.Errorf("Stop outside a node = %v", err)
	}
	p := program.New("stop")
	h := program.AddNode(p, "echo", program.NewCourierNode(newEcho))
	program.AddNode(p, "stopper", program.NewFuncNode(program.Stop))
	p.Stop() // not launched: nothing happens
	env, stop := runAll(t, p, program.ID("echo", 0), program.ID("stopper", 0))
	c, err := h.Dereference(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// From an RPC method's context.
	if _, err := c.Call(context.Background(), "Stop"); err != nil {
		t.Fatal(err)
	}
	// From outside any node.
	p.Stop()
	for id, err := range stop() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if n := env.stopCount(); n != 3 {
		t.Errorf("%d stops reached the launcher, want 3", n)
	}
	if _, err := h.Dereference(context.Background()); !errors.Is(err, program.ErrNotLaunched) {
		t.Errorf("Dereference after unbind = %v", err)
	}
}

func TestPanicIsReturned(t *testing.T) {
	p := program.New("panic")
	program.AddNode(p, "f", program.NewFuncNode(func() { panic("oops") }))
	unbind, err := p.Bind(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer unbind()
	err = p.Run(context.Background(), program.ID("f", 0))
	var pe *program.PanicError
	if !errors.As(err, &pe) || pe.Value != "oops" || !strings.Contains(string(pe.Stack), "program_test.TestPanicIsReturned") {
		t.Errorf("Run = %v, want a PanicError with the stack", err)
	}
}

func TestColocationFailure(t *testing.T) {
	boom := errors.New("boom")
	p := program.New("coloc")
	waiting := program.NewFuncNode(func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
	program.AddNode(p, "c", program.NewThreadColocation(waiting, program.NewFuncNode(func() error { return boom })))
	unbind, err := p.Bind(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer unbind()
	err = p.Run(context.Background(), program.ID("c", 0))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "c/0/1: boom") {
		t.Errorf("Run = %v, want c/0/1's error", err)
	}
}

func TestReplayNode(t *testing.T) {
	p := program.New("replay")
	h := program.AddNode(p, "replay", program.NewReplayNode(replay.ServerOptions{Tables: []table.Options{{Name: "a"}, {Name: "b"}}}))
	_, stop := runAll(t, p, program.ID("replay", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.Dereference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.ServerInfo(ctx)
	if err != nil || len(info.Tables) != 2 {
		t.Errorf("ServerInfo = %+v, %v", info, err)
	}
	for id, err := range stop() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

type runIface interface{ Run(context.Context) error }

// A constructor may return an interface; the dynamic value is served and
// its Run called.
func TestCourierNodeInterfaceResult(t *testing.T) {
	p := program.New("iface")
	r := &Runner{ran: make(chan struct{}), err: errors.New("done")}
	program.AddNode(p, "r", program.NewCourierNode(func() runIface { return r }))
	program.AddNode(p, "bad", program.NewCourierNode(func() interface{ Run(int) } { return nil }))
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "bad/0") || strings.Contains(err.Error(), "r/0") {
		t.Fatalf("Validate = %v, want only bad/0's Run", err)
	}
	unbind, err := p.Bind(newFakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer unbind()
	if err := p.Run(context.Background(), program.ID("r", 0)); err == nil || err.Error() != "Run: done" {
		t.Errorf("Run = %v", err)
	}
}
