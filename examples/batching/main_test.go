package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// TestBatching drives the server from the test: concurrent calls are
// answered correctly, in fewer batches than calls.
func TestBatching(t *testing.T) {
	p := BuildProgram(1, 1, 16)
	launch.StartTest(t, p, launch.WithDisabledRun("client", "reporter"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := program.Lookup[*courier.Client](p, program.ID("server", 0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.Dereference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const calls = 100
	fs := make([]*courier.Future[float64], calls)
	for i := range fs {
		fs[i] = courier.GoT[float64](ctx, c, "Compute", float64(i))
	}
	for i, f := range fs {
		if y, err := f.Result(ctx); err != nil || y != 2*float64(i) {
			t.Fatalf("Compute(%d) = %v, %v", i, y, err)
		}
	}
	st, err := courier.CallT[BatchStats](ctx, c, "Stats")
	if err != nil {
		t.Fatal(err)
	}
	if st.Calls != calls || st.Largest > 16 || st.Batches >= calls {
		t.Errorf("Stats = %+v: want %d calls in batches of at most 16", st, calls)
	}
}

func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	bin := filepath.Join(t.TempDir(), "batching")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`(\d+) calls in (\d+) batches, largest (\d+)`)
	for _, lt := range []string{"local_mt", "local_mp"} {
		t.Run(lt, func(t *testing.T) {
			out, err := exec.Command(bin, "--lp_launch_type="+lt, "--num_clients=3", "--calls=64", "--batch_size=32").CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			m := re.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no statistics in:\n%s", out)
			}
			calls, _ := strconv.Atoi(string(m[1]))
			batches, _ := strconv.Atoi(string(m[2]))
			largest, _ := strconv.Atoi(string(m[3]))
			if calls != 192 || largest > 32 || batches >= calls {
				t.Errorf("%d calls in %d batches, largest %d:\n%s", calls, batches, largest, out)
			}
		})
	}
}
