package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/recall-rl/recall/replay"
)

// tokenEnv names the environment variable read when --auth-token is empty.
const tokenEnv = "REPLAY_AUTH_TOKEN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the command failed (unreachable server, RPC error, ...)
	exitUsage = 2 // bad command line
)

// globalOptions are the flags every command accepts, before or after the
// command name.
type globalOptions struct {
	addr    string
	token   string
	tlsCA   string
	tls     bool
	timeout time.Duration
}

// bindGlobalFlags defines the global flags on fs, with g's current values
// as defaults (so flags given before the command survive a second FlagSet).
func bindGlobalFlags(fs *flag.FlagSet, g *globalOptions) {
	fs.StringVar(&g.addr, "addr", g.addr, "replay server `host:port`")
	fs.StringVar(&g.token, "auth-token", g.token, "bearer `token` sent with every call (default $"+tokenEnv+")")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "connect with TLS, trusting the CA certificates in this PEM `file`")
	fs.BoolVar(&g.tls, "tls", g.tls, "connect with TLS, trusting the system's CA certificates")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long to wait to connect and for each call; for sample, how long the rate limiter may block one sample (0: no limit)")
}

func defaultGlobals() globalOptions {
	return globalOptions{addr: "127.0.0.1:9090", timeout: 10 * time.Second}
}

// flagArgs returns the global flags whose values differ from the defaults,
// as "--name=value" arguments (passed on to bench).
func (g *globalOptions) flagArgs() []string {
	d := defaultGlobals()
	var args []string
	add := func(name, v, def string) {
		if v != def {
			args = append(args, "--"+name+"="+v)
		}
	}
	add("addr", g.addr, d.addr)
	add("auth-token", g.token, d.token)
	add("tls-ca", g.tlsCA, d.tlsCA)
	add("tls", fmt.Sprint(g.tls), fmt.Sprint(d.tls))
	add("timeout", g.timeout.String(), d.timeout.String())
	return args
}

// dial connects to the server, waiting at most g.timeout.
func (g *globalOptions) dial(ctx context.Context) (*replay.Client, error) {
	opts := []replay.Option{replay.WithCallTimeout(g.timeout)}
	token := g.token
	if token == "" {
		token = os.Getenv(tokenEnv)
	}
	if token != "" {
		opts = append(opts, replay.WithAuthToken(token))
	}
	if g.tls || g.tlsCA != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if g.tlsCA != "" {
			pem, err := os.ReadFile(g.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca: no PEM certificates in %s", g.tlsCA)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, replay.WithTLS(cfg))
	}
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	c, err := replay.Dial(ctx, g.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", g.addr, err)
	}
	return c, nil
}

// command is one replayctl command.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	// run executes the command; args follow the command name.
	run func(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"info", "[--json]", "show the server's tables, their sizes, rate limiters and counters", runInfo},
		{"sample", "TABLE [-n N] [--json]", "sample N items of TABLE and print their info, one line each", runSample},
		{"reset", "TABLE", "delete every item of TABLE and zero its counters", runReset},
		{"checkpoint", checkpointSynopsis, "ask the server to write a checkpoint and print its path; ls and inspect read checkpoints on disk, no server needed", runCheckpointCommand},
		{"bench", "[flags]", "run a load benchmark against the server (see replayctl bench -h)",
			func(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int {
				return runBench(ctx, append(g.flagArgs(), args...), stdout, stderr)
			}},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: replayctl [global flags] COMMAND [ARGS] [flags]

replayctl inspects and manages a replay server (replayd).

Commands:
`)
	for _, c := range commands() {
		syn := c.name
		if c.args != "" {
			syn += " " + c.args
		}
		fmt.Fprintf(w, "  %-32s %s\n", syn, c.summary)
	}
	fmt.Fprint(w, `  help [COMMAND]                   show this help or a command's flags

Global flags (also accepted after the command):
`)
	g := defaultGlobals()
	fs := flag.NewFlagSet("replayctl", flag.ContinueOnError)
	bindGlobalFlags(fs, &g)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Exit status: 0 on success, 1 when the command fails, 2 for a bad command line.
`)
}

// run is the whole program; main only adds signals and os.Exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := defaultGlobals()
	fs := flag.NewFlagSet("replayctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed below
	bindGlobalFlags(fs, &g)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "replayctl: %v\n\n", err)
		usage(stderr)
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, "replayctl: no command\n\n")
		usage(stderr)
		return exitUsage
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		return runHelp(ctx, rest, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, &g, rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "replayctl: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			g := defaultGlobals()
			return c.run(ctx, &g, []string{"-h"}, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "replayctl: help: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// commandFlags returns a FlagSet for command c that also takes the global
// flags. Its usage goes to stderr, or to stdout for -h.
func commandFlags(c, synopsis string, g *globalOptions, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("replayctl "+c, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bindGlobalFlags(fs, g)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: replayctl [global flags] %s %s\n\nFlags (including the global ones):\n", c, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseCommand parses args with fs, allowing flags before, between and
// after positional arguments, and checks the number of positional
// arguments. It returns the exit status to use when ok is false.
func parseCommand(fs *flag.FlagSet, args []string, npos int, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	for {
		// -h prints the usage to stdout (it was asked for).
		for _, a := range args {
			if a == "--" {
				break
			}
			if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
				fs.SetOutput(stdout)
				fs.Usage()
				return nil, exitOK, false
			}
		}
		if err := fs.Parse(args); err != nil {
			return nil, exitUsage, false // the flag package printed the error and usage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != npos {
		if len(pos) < npos {
			fmt.Fprintf(stderr, "%s: missing arguments\n", fs.Name())
		} else {
			fmt.Fprintf(stderr, "%s: unexpected arguments: %s\n", fs.Name(), strings.Join(pos[npos:], " "))
		}
		fs.Usage()
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// fail prints a command's error with hints and returns exitError.
func fail(stderr io.Writer, cmd string, err error) int {
	msg := err.Error()
	switch {
	case errors.Is(err, replay.ErrUnauthenticated):
		msg += " (set --auth-token or $" + tokenEnv + ")"
	case errors.Is(err, replay.ErrUnavailable) && !strings.Contains(msg, "cannot connect"):
		msg += " (is replayd running?)"
	}
	fmt.Fprintf(stderr, "replayctl: %s: %s\n", cmd, msg)
	return exitError
}

func runReset(ctx context.Context, g *globalOptions, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("reset", "TABLE", g, stderr)
	pos, code, ok := parseCommand(fs, args, 1, stdout, stderr)
	if !ok {
		return code
	}
	c, err := g.dial(ctx)
	if err != nil {
		return fail(stderr, "reset", err)
	}
	defer c.Close()
	if err := c.Reset(ctx, pos[0]); err != nil {
		return fail(stderr, "reset", err)
	}
	fmt.Fprintf(stdout, "reset table %s\n", pos[0])
	return exitOK
}
