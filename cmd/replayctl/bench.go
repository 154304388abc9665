package main

import (
	"context"
	"fmt"
	"io"
)

// runBench runs "replayctl bench". args are the arguments after "bench",
// preceded by the global flags that were given before the command and
// differ from their defaults, as "--name=value" (see globalOptions.flagArgs):
// define them with bindGlobalFlags(fs, &g) on the command's FlagSet
// (g := defaultGlobals()) and connect with g.dial(ctx). Return exitOK,
// exitError or exitUsage.
//
// This is a placeholder for the bench command, which replaces this file.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "bench: not implemented yet")
	return exitUsage
}
