package launch

import (
	"context"

	"github.com/recall-rl/recall/program"
)

// TB is the part of testing.TB that StartTest uses (so that package launch
// does not import package testing).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

// StartTest launches p under test_mt for the test tb and returns at once.
// The test can then dereference any node's handle (kept from AddNode, or
// from program.Lookup) and drive it; WithDisabledRun keeps nodes' runs from
// starting so the test can call them itself. When the test ends, the
// program is stopped and waited for, and an error it ended with fails the
// test. opts may not change the launch type.
func StartTest(tb TB, p *program.Program, opts ...Option) *Run {
	tb.Helper()
	opts = append(opts, WithLaunchType(TestMT), WithArgs(nil))
	r, err := Start(context.Background(), p, opts...)
	if err != nil {
		tb.Fatalf("launch: %v", err)
	}
	tb.Cleanup(func() {
		r.Stop()
		if err := r.Wait(); err != nil {
			tb.Errorf("launch: program %q: %v", p.Name(), err)
		}
	})
	return r
}
