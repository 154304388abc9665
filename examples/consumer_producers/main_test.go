package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recall-rl/recall/courier"
	"github.com/recall-rl/recall/launch"
	"github.com/recall-rl/recall/program"
)

// TestConsumer is Launchpad's test_mt pattern: disable the consumer's run,
// launch, dereference the consumer and drive it from the test.
func TestConsumer(t *testing.T) {
	p := BuildProgram(3)
	launch.StartTest(t, p, launch.WithDisabledRun("consumer"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	consumer, err := program.Lookup[*courier.Client](p, program.ID("consumer", 0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.Dereference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results, err := courier.CallT[[]int](ctx, c, "Gather")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 1004, 2009}; !slices.Equal(results, want) {
		t.Errorf("Gather = %v, want %v", results, want)
	}

	// Any node can be dereferenced, here a producer.
	producer, err := program.Lookup[*courier.Client](p, program.ID("producer", 2))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := producer.Dereference(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := courier.CallT[int](ctx, pc, "Work", 5); err != nil || v != 2025 {
		t.Errorf("producer/2 Work(5) = %v, %v; want 2025", v, err)
	}
}

// TestProgram runs the whole program under test_mt: the consumer's Run
// gathers and stops the program.
func TestProgram(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := launch.Launch(ctx, BuildProgram(4), launch.WithLaunchType(launch.TestMT), launch.WithArgs(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestCommand builds the example and runs it as a user would, under
// local_mt and local_mp: it must exit 0 and print the producers' results.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	bin := filepath.Join(t.TempDir(), "consumer_producers")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, lt := range []string{"local_mt", "local_mp"} {
		t.Run(lt, func(t *testing.T) {
			out, err := exec.Command(bin, "--lp_launch_type="+lt, "--num_producers=5").CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), "Results: [1 1004 2009 3016 4025]") {
				t.Errorf("output lacks the results:\n%s", out)
			}
		})
	}
}
