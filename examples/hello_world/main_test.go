package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recall-rl/recall/launch"
)

func TestProgram(t *testing.T) {
	if err := launch.Launch(context.Background(), BuildProgram("hi"), launch.WithLaunchType(launch.TestMT), launch.WithArgs(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestCommand builds the example and runs it under local_mt and local_mp.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	bin := filepath.Join(t.TempDir(), "hello_world")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct{ lt, want string }{
		{"local_mt", "Hello World! (from node hello/0)\n"},
		{"local_mp", "[hello/0] Hello World! (from node hello/0)\n"},
	} {
		t.Run(tc.lt, func(t *testing.T) {
			out, err := exec.Command(bin, "--lp_launch_type", tc.lt).CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Errorf("%v; output %q, want %q", err, out, tc.want)
			}
		})
	}
	out, err := exec.Command(bin, "--lp_launch_type=local_mp", "-greeting=Bonjour").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Bonjour") {
		t.Errorf("flags are not forwarded to the node: %v %q", err, out)
	}
}
