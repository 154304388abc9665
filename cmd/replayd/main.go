package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recall-rl/recall/internal/gctune"
	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

// defaultConfig is served when --config is not given. It equals
// replay.DefaultConfig() (a test checks).
//
//go:embed default.yaml
var defaultConfig []byte

// tokenEnv names the environment variable read when --auth-token is empty.
const tokenEnv = "REPLAY_AUTH_TOKEN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second
	// one kills the process even if the graceful shutdown hangs.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line flags.
type options struct {
	addr            string
	config          string
	printConfig     bool
	metricsAddr     string
	tlsCert         string
	tlsKey          string
	authToken       string
	maxMessageBytes int
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	gcHeadroomMiB   int
	version         bool
	ckpt            checkpointFlags
}

func newFlagSet(stderr io.Writer, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("replayd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9090", "`host:port` to serve the replay service on; port 0 picks a free port")
	fs.StringVar(&o.config, "config", "", "table config `file` (.yaml, .yml or .json; see docs/config.md); default: one table \"default\"")
	fs.BoolVar(&o.printConfig, "print-default-config", false, "print the default table config (YAML) and exit")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "`host:port` to serve Prometheus /metrics and /healthz over HTTP on; empty: off")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, serve TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.StringVar(&o.authToken, "auth-token", "", "require this bearer `token` on every RPC (default $"+tokenEnv+")")
	fs.IntVar(&o.maxMessageBytes, "max-message-bytes", replay.DefaultMaxMessageBytes, "largest gRPC message sent or received, in `bytes`")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT or SIGTERM, how long RPCs may take to finish before connections are cut")
	fs.IntVar(&o.gcHeadroomMiB, "gc-headroom", 128, "let the heap grow about this many `MiB` past the live data before collecting (between 10% and 100% of it), so RSS stays near the data held; up to 4x more while collecting takes over 15% of the CPU; 0 or $GOGC: Go's default")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	bindCheckpointFlags(fs, &o.ckpt)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: replayd [flags]

replayd serves experience-replay tables over gRPC until SIGINT or SIGTERM.
Once serving it logs "listening on HOST:PORT" (and "metrics listening on
HOST:PORT" with --metrics-addr) to stderr.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

// usageError is an error in the command line or in the files it names:
// exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run is the whole program; main only adds signals and os.Exit. It returns
// the exit status: 0 after a clean shutdown (ctx ended), 1 when serving
// fails, 2 for a bad command line or config.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet(stderr, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replayd: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return 2
	}
	switch {
	case o.version:
		fmt.Fprintln(stdout, versionString())
		return 0
	case o.printConfig:
		_, _ = stdout.Write(defaultConfig)
		return 0
	}
	cfg, log, err := setup(&o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "replayd: %v\n", err)
		if _, ok := errors.AsType[usageError](err); ok {
			return 2
		}
		return 1
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("replayd failed", "err", err)
		return 1
	}
	return 0
}

// serverConfig is what setup derives from the flags.
type serverConfig struct {
	opts            replay.ServerOptions
	addr            string
	metricsAddr     string
	configName      string
	shutdownTimeout time.Duration
	gcHeadroom      uint64 // bytes; 0: leave the GC alone
}

// setup checks the flags, builds the logger and loads the config and TLS
// files. Errors are usageErrors.
func setup(o *options, stderr io.Writer) (serverConfig, *slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return serverConfig{}, nil, usagef("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	switch o.logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return serverConfig{}, nil, usagef("--log-format %q: want text or json", o.logFormat)
	}
	if o.maxMessageBytes < 0 {
		return serverConfig{}, nil, usagef("--max-message-bytes %d: must be >= 0 (0: default)", o.maxMessageBytes)
	}
	if o.gcHeadroomMiB < 0 {
		return serverConfig{}, nil, usagef("--gc-headroom %d: must be >= 0", o.gcHeadroomMiB)
	}
	if os.Getenv("GOGC") != "" {
		o.gcHeadroomMiB = 0 // an explicit GOGC wins
	}
	if o.shutdownTimeout < 0 {
		return serverConfig{}, nil, usagef("--shutdown-timeout %v: must be >= 0", o.shutdownTimeout)
	}
	cfg := serverConfig{
		addr:            o.addr,
		metricsAddr:     o.metricsAddr,
		shutdownTimeout: o.shutdownTimeout,
		gcHeadroom:      uint64(max(o.gcHeadroomMiB, 0)) << 20,
		opts: replay.ServerOptions{
			MaxMessageBytes: o.maxMessageBytes,
			AuthToken:       o.authToken,
			Logger:          log,
		},
	}
	if cfg.opts.AuthToken == "" {
		cfg.opts.AuthToken = os.Getenv(tokenEnv)
	}
	if err := o.ckpt.apply(&cfg.opts); err != nil {
		return cfg, log, err
	}

	var tables []table.Options
	var err error
	if o.config == "" {
		cfg.configName = "default"
		tables, err = replay.ParseConfig(defaultConfig, "yaml", "default config")
	} else {
		cfg.configName = o.config
		tables, err = replay.LoadConfig(o.config)
	}
	if err != nil {
		return cfg, log, usageError{fmt.Errorf("invalid config: %w", err)}
	}
	cfg.opts.Tables = tables

	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return cfg, log, usagef("--tls-cert and --tls-key must be given together")
	case o.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return cfg, log, usagef("cannot load TLS key pair: %w", err)
		}
		cfg.opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return cfg, log, nil
}

// serve runs the server until ctx ends, then shuts it down gracefully.
func serve(ctx context.Context, cfg serverConfig, log *slog.Logger) error {
	srv, err := replay.NewServer(cfg.opts)
	if err != nil {
		return fmt.Errorf("cannot create server: %w", err)
	}
	if cfg.gcHeadroom > 0 {
		defer gctune.Start(cfg.gcHeadroom)()
	}
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		srv.Stop()
		return fmt.Errorf("cannot listen: %w", err)
	}
	var draining atomic.Bool
	var metrics *http.Server
	var metricsLis net.Listener
	if cfg.metricsAddr != "" {
		if metricsLis, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			lis.Close()
			srv.Stop()
			return fmt.Errorf("cannot listen for metrics: %w", err)
		}
		metrics = &http.Server{Handler: metricsHandler(srv, &draining, log), ReadHeaderTimeout: 10 * time.Second}
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	names := make([]string, len(cfg.opts.Tables))
	for i, t := range cfg.opts.Tables {
		names[i] = t.Name
	}
	// The replay address is logged first: a reader that takes the first
	// "listening on" line gets it.
	log.Info("listening on "+lis.Addr().String(),
		"tables", strings.Join(names, ","), "config", cfg.configName,
		"tls", cfg.opts.TLS != nil, "auth", cfg.opts.AuthToken != "", "version", replay.Version)
	if cfg.opts.AuthToken != "" && cfg.opts.TLS == nil && !isLoopback(lis.Addr()) {
		log.Warn("the auth token travels in clear text: serve TLS (--tls-cert, --tls-key) on non-loopback addresses")
	}
	metricsErr := make(chan error, 1)
	if metrics != nil {
		go func() { metricsErr <- metrics.Serve(metricsLis) }()
		log.Info("metrics listening on " + metricsLis.Addr().String())
	}

	var failure error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx), "grace", cfg.shutdownTimeout)
	case err := <-serveErr:
		serveErr <- err // for the wait below
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		failure = fmt.Errorf("serve: %w", err)
	case err := <-metricsErr:
		metricsErr <- err // for the wait below
		failure = fmt.Errorf("metrics server: %w", err)
	}

	draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("grace period over: connections cut", "err", err)
	}
	if err := <-serveErr; err != nil && failure == nil {
		failure = fmt.Errorf("serve: %w", err)
	}
	if metrics != nil {
		mctx, mcancel := context.WithTimeout(context.Background(), time.Second)
		defer mcancel()
		if err := metrics.Shutdown(mctx); err != nil {
			metrics.Close()
		}
		if err := <-metricsErr; err != nil && !errors.Is(err, http.ErrServerClosed) && failure == nil {
			failure = fmt.Errorf("metrics server: %w", err)
		}
	}
	if failure != nil {
		return failure
	}
	log.Info("stopped")
	return nil
}

// metricsHandler serves /metrics (Prometheus text format), /healthz
// (200 while serving, 503 once shutting down) and Go's /debug/pprof/.
func metricsHandler(srv *replay.Server, draining *atomic.Bool, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := srv.WriteMetrics(w); err != nil {
			log.Debug("writing metrics", "err", err)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "shutting down")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// Go profiles, for performance work: /debug/pprof/profile?seconds=N.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func versionString() string {
	s := fmt.Sprintf("replayd %s (%s %s/%s", replay.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" && len(st.Value) >= 12 {
				s += ", revision " + st.Value[:12]
			}
		}
	}
	return s + ")"
}
