package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recall-rl/recall/internal/chunkcodec"
	"github.com/recall-rl/recall/internal/testutil"
	"github.com/recall-rl/recall/replay"
	"github.com/recall-rl/recall/table"
)

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// --- fixtures -----------------------------------------------------------------

const testTables = `
tables:
  - name: replay
    sampler: {kind: prioritized, priority_exponent: 0.6}
    remover: fifo
    max_size: 100
    rate_limiter: {min_size: 1}
  - name: queue
    sampler: fifo
    remover: fifo
    max_size: 10
    max_times_sampled: 1
    rate_limiter: {queue: 10}
    signature:
      - {name: obs, dtype: float32, shape: [2]}
`

// startServer serves testTables in-process on a free port.
func startServer(t *testing.T, opts replay.ServerOptions) (string, *replay.Server) {
	t.Helper()
	tables, err := replay.ParseConfig([]byte(testTables), "yaml", "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts.Tables = tables
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := replay.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String(), srv
}

func dial(t *testing.T, addr string, opts ...replay.Option) *replay.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := replay.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var nextKey atomic.Uint64

// insert puts one single-step item per priority straight into the server's
// table (not through the wire, so these tests do not depend on the
// writer), each with a float32 [2] column "obs" in a chunk of its own.
func insert(t *testing.T, srv *replay.Server, name string, priorities []float64) {
	t.Helper()
	tb := srv.Table(name)
	if tb == nil {
		t.Fatalf("no table %q", name)
	}
	for i, p := range priorities {
		obs, err := replay.FromSlice([]float32{float32(i), float32(i) + 0.5})
		if err != nil {
			t.Fatal(err)
		}
		data, err := chunkcodec.Encode([]chunkcodec.Column{{Name: "obs", Steps: []replay.Tensor{obs}}}, chunkcodec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		key := nextKey.Add(1)
		ref := tb.Chunks().Add(&table.Chunk{Key: key, EpisodeID: 1, Start: int64(i), Length: 1, Data: data,
			Columns: []table.ColumnSpec{{Name: "obs", DType: obs.DType, Shape: obs.Shape}}})
		err = tb.Insert(context.Background(), table.Item{Key: key, Priority: p, Chunks: []*table.ChunkRef{ref},
			Trajectory: []table.TrajectoryColumn{{Slices: []table.ChunkSlice{{ChunkKey: key, Length: 1}}}}})
		ref.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func tableInfo(t *testing.T, addr, name string, opts ...replay.Option) replay.TableInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	si, err := dial(t, addr, opts...).ServerInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range si.Tables {
		if ti.Name == name {
			return ti
		}
	}
	t.Fatalf("no table %q", name)
	return replay.TableInfo{}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// ctl runs replayctl in-process.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) check(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\n%s", r.code, code, r)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q\n%s", s, r)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q\n%s", s, r)
		}
	}
}

// --- in-process tests ---------------------------------------------------------------

func TestReplayctlUsage(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{"no command", nil, 2, nil, []string{"replayctl: no command", "Usage: replayctl", "Exit status"}},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`replayctl: unknown command "frobnicate"`, "Usage: replayctl"}},
		{"help", []string{"help"}, 0, []string{"Usage: replayctl", "info [--json]", "sample TABLE [-n N] [--json]", "reset TABLE", "checkpoint", "bench", "-auth-token", "REPLAY_AUTH_TOKEN", "-tls-ca", "-timeout"}, nil},
		{"-h", []string{"-h"}, 0, []string{"Usage: replayctl", "Commands:"}, nil},
		{"help sample", []string{"help", "sample"}, 0, []string{"Usage: replayctl [global flags] sample TABLE [-n N] [--json]", "-n int", "-json", "-addr"}, nil},
		{"help unknown", []string{"help", "nope"}, 2, nil, []string{`help: unknown command "nope"`}},
		{"info -h", []string{"info", "-h"}, 0, []string{"Usage: replayctl [global flags] info [--json]"}, nil},
		{"sample --help", []string{"sample", "t", "--help"}, 0, []string{"Usage: replayctl [global flags] sample"}, nil},
		{"sample without table", []string{"sample"}, 2, nil, []string{"replayctl sample: missing arguments", "Usage: replayctl [global flags] sample"}},
		{"sample two tables", []string{"sample", "a", "b"}, 2, nil, []string{"replayctl sample: unexpected arguments: b"}},
		{"sample n zero", []string{"sample", "t", "-n", "0"}, 2, nil, []string{"-n 0: must be >= 1"}},
		{"sample n not a number", []string{"sample", "t", "-n", "x"}, 2, nil, []string{`invalid value "x" for flag -n`}},
		{"reset without table", []string{"reset"}, 2, nil, []string{"replayctl reset: missing arguments"}},
		{"info with argument", []string{"info", "extra"}, 2, nil, []string{"replayctl info: unexpected arguments: extra"}},
		{"checkpoint with argument", []string{"checkpoint", "now"}, 2, nil, []string{"unexpected arguments: now"}},
		{"unknown global flag", []string{"--bogus", "info"}, 2, nil, []string{"flag provided but not defined: -bogus", "Usage: replayctl"}},
		{"unknown command flag", []string{"info", "--bogus"}, 2, nil, []string{"flag provided but not defined: -bogus", "Usage: replayctl [global flags] info"}},
		{"bad timeout", []string{"--timeout", "soon", "info"}, 2, nil, []string{`invalid value "soon" for flag -timeout`}},
		{"json on reset", []string{"reset", "t", "--json"}, 2, nil, []string{"flag provided but not defined: -json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl(t, tt.args...).check(t, tt.code, tt.stdout, tt.stderr)
		})
	}
}

func TestReplayctlInfo(t *testing.T) {
	addr, srv := startServer(t, replay.ServerOptions{})
	insert(t, srv, "replay", []float64{1, 2, 3})

	r := ctl(t, "--addr", addr, "info")
	r.check(t, 0, nil, nil)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("short output\n%s", r)
	}
	rows := [][]string{
		{"NAME", "SIZE", "MAX_SIZE", "SAMPLER", "REMOVER", "RATE_LIMITER", "INSERTS", "SAMPLES"},
		{"replay", "3", "100", "prioritized(0.6)", "fifo", "MinSize(1)", "3", "0"},
		{"queue", "0", "10", "fifo", "fifo", "Queue(10)", "0", "0"},
	}
	for i, want := range rows {
		if got := strings.Fields(lines[i]); !reflect.DeepEqual(got, want) {
			t.Errorf("line %d: %q, want fields %q", i, lines[i], want)
		}
	}
	// Columns are aligned: every header name starts where its values do.
	for _, col := range []string{"SIZE", "SAMPLER", "RATE_LIMITER", "SAMPLES"} {
		at := strings.Index(lines[0], col)
		for _, line := range lines[1:3] {
			if at >= len(line) || line[at] == ' ' || line[at-1] != ' ' {
				t.Errorf("column %s (at %d) not aligned in %q", col, at, line)
			}
		}
	}
	if !strings.Contains(r.stdout, "\nqueue: sampling blocked: table size 0 is below min_size_to_sample 1\n") {
		t.Errorf("no blocked-sampling line for queue\n%s", r)
	}
	if strings.Contains(r.stdout, "replay: sampling blocked") {
		t.Errorf("replay is not blocked\n%s", r)
	}
	if !strings.Contains(r.stdout, "2 tables, 3 chunks (") || !strings.Contains(r.stdout, "server version "+replay.Version) {
		t.Errorf("no summary line\n%s", r)
	}

	r = ctl(t, "info", "--json", "--addr", addr)
	r.check(t, 0, nil, nil)
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r)
	}
	tables, _ := raw["tables"].([]any)
	if len(tables) != 2 {
		t.Fatalf("tables: %v", raw["tables"])
	}
	replayT := tables[0].(map[string]any)
	for k, want := range map[string]any{
		"name": "replay", "size": 3.0, "max_size": 100.0, "sampler": "prioritized(0.6)", "remover": "fifo",
		"rate_limiter": "MinSize(1)", "samples_per_insert": 1.0, "min_size_to_sample": 1.0, "min_diff": -math.MaxFloat64,
		"max_diff": math.MaxFloat64, "inserts": 3.0, "samples": 0.0, "deletes": 0.0, "num_episodes": 1.0,
		"num_unique_samples": 0.0, "insert_waits": 0.0, "sample_waits": 0.0, "inserts_waiting": 0.0,
		"samples_waiting": 0.0, "sample_blocked_reason": "", "insert_blocked_reason": "", "closed": false,
		"max_times_sampled": 0.0, "num_deleted_episodes": 0.0,
	} {
		if got, ok := replayT[k]; !ok || got != want {
			t.Errorf("tables[0].%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if _, ok := replayT["signature"]; ok {
		t.Errorf("tables[0] has a signature: %v", replayT["signature"])
	}
	var info infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	q := info.Tables[1]
	if q.Name != "queue" || q.RateLimiter != "Queue(10)" || q.MaxTimesSampled != 1 || q.MaxDiff != 10 ||
		q.SampleBlockedReason == "" || !reflect.DeepEqual(q.Signature, []columnJSON{{Name: "obs", DType: "float32", Shape: []int{2}}}) {
		t.Errorf("queue table: %+v", q)
	}
	if info.Address != addr || info.Version != replay.Version || info.TablesStateID == "" || info.NumChunks != 3 || info.ChunkBytes <= 0 {
		t.Errorf("server fields: %+v", info)
	}
}

var sampleLineRE = regexp.MustCompile(`^key=(\d+) priority=(\S+) probability=(\S+) times_sampled=(\d+) table_size=(\d+) inserted_at=(\S+) rate_limited=(true|false) columns=obs:float32\[1,2\]$`)

func TestReplayctlSample(t *testing.T) {
	addr, srv := startServer(t, replay.ServerOptions{})
	prios := []float64{1, 2, 3, 4, 5}
	insert(t, srv, "replay", prios)
	var sum float64
	for _, p := range prios {
		sum += math.Pow(p, 0.6)
	}

	r := ctl(t, "--addr", addr, "sample", "replay", "-n", "3")
	r.check(t, 0, nil, nil)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3\n%s", len(lines), r)
	}
	for _, line := range lines {
		m := sampleLineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %q does not match %s", line, sampleLineRE)
		}
		if m[5] != "5" {
			t.Errorf("table_size %s, want 5", m[5])
		}
		if _, err := time.Parse(time.RFC3339Nano, m[6]); err != nil {
			t.Errorf("inserted_at: %v", err)
		}
	}

	r = ctl(t, "sample", "--json", "--addr", addr, "replay", "-n", "4")
	r.check(t, 0, nil, nil)
	var got []sampleJSON
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var s sampleJSON
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, s)
	}
	if len(got) != 4 {
		t.Fatalf("%d JSON lines, want 4\n%s", len(got), r)
	}
	for _, s := range got {
		want := math.Pow(s.Priority, 0.6) / sum
		if s.Table != "replay" || !slices.Contains(prios, s.Priority) || math.Abs(s.Probability-want) > 1e-9 ||
			s.TableSize != 5 || s.TimesSampled < 1 || s.Key == 0 || time.Since(s.InsertedAt) > time.Minute ||
			!reflect.DeepEqual(s.Columns, []columnJSON{{Name: "obs", DType: "float32", Shape: []int{1, 2}}}) {
			t.Errorf("sample %+v (want probability %v)", s, want)
		}
	}
}

func TestReplayctlSampleQueue(t *testing.T) {
	addr, srv := startServer(t, replay.ServerOptions{})
	insert(t, srv, "queue", []float64{7, 8})

	// FIFO order, each item once; then the queue is empty and the limiter
	// blocks, which the error explains.
	r := ctl(t, "--addr", addr, "sample", "queue", "-n", "2", "--json")
	r.check(t, 0, nil, nil)
	var prios []float64
	for line := range strings.Lines(r.stdout) {
		var s sampleJSON
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		if s.Probability != 1 || s.TimesSampled != 1 {
			t.Errorf("queue sample %+v", s)
		}
		prios = append(prios, s.Priority)
	}
	if !reflect.DeepEqual(prios, []float64{7, 8}) {
		t.Errorf("priorities %v, want [7 8] (FIFO)", prios)
	}
	r = ctl(t, "--addr", addr, "--timeout", "200ms", "sample", "queue")
	r.check(t, 1, nil, []string{"replayctl: sample: no sample of table queue within --timeout 200ms: the rate limiter blocks sampling: table size 0 is below min_size_to_sample 1"})
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}
	if ti := tableInfo(t, addr, "queue"); ti.Size != 0 || ti.Limiter.Deletes != 2 {
		t.Errorf("queue after sampling: size %d, deletes %d", ti.Size, ti.Limiter.Deletes)
	}
}

func TestReplayctlErrors(t *testing.T) {
	addr, _ := startServer(t, replay.ServerOptions{})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"sample unknown table", []string{"--addr", addr, "sample", "nope"}, []string{"replayctl: sample: ", `table not found: "nope" (tables: replay, queue)`}},
		{"reset unknown table", []string{"--addr", addr, "reset", "nope"}, []string{"replayctl: reset: ", "table not found"}},
		{"checkpoint unsupported", []string{"--addr", addr, "checkpoint"}, []string{"replayctl: checkpoint: the server at " + addr + " does not support checkpoints"}},
		{"unreachable info", []string{"--addr", dead, "--timeout", "300ms", "info"}, []string{"replayctl: info: cannot connect to " + dead}},
		{"unreachable sample", []string{"--addr", dead, "--timeout", "300ms", "sample", "replay"}, []string{"replayctl: sample: cannot connect to " + dead}},
		{"unreachable reset", []string{"--addr", dead, "--timeout", "300ms", "reset", "replay"}, []string{"cannot connect"}},
		{"unreachable checkpoint", []string{"--addr", dead, "--timeout", "300ms", "checkpoint"}, []string{"cannot connect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(t, tt.args...)
			r.check(t, 1, nil, tt.stderr)
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
}

func TestReplayctlReset(t *testing.T) {
	addr, srv := startServer(t, replay.ServerOptions{})
	insert(t, srv, "replay", []float64{1, 1, 1})
	if ti := tableInfo(t, addr, "replay"); ti.Size != 3 {
		t.Fatalf("size %d before reset", ti.Size)
	}
	ctl(t, "reset", "replay", "--addr", addr).check(t, 0, []string{"reset table replay\n"}, nil)
	if ti := tableInfo(t, addr, "replay"); ti.Size != 0 || ti.Limiter.Inserts != 0 {
		t.Fatalf("after reset: size %d, inserts %d", ti.Size, ti.Limiter.Inserts)
	}
}

func TestReplayctlAuthToken(t *testing.T) {
	addr, _ := startServer(t, replay.ServerOptions{AuthToken: "s3cret"})
	ctl(t, "--addr", addr, "info").check(t, 1, nil, []string{"replayctl: info: ", "Unauthenticated", "(set --auth-token or $REPLAY_AUTH_TOKEN)"})
	ctl(t, "--addr", addr, "--auth-token", "wrong", "info").check(t, 1, nil, []string{"Unauthenticated"})
	ctl(t, "--addr", addr, "--auth-token", "s3cret", "info").check(t, 0, []string{"replay"}, nil)
	ctl(t, "info", "--addr", addr, "--auth-token=s3cret", "--json").check(t, 0, []string{`"name": "replay"`}, nil)
	ctl(t, "--addr", addr, "sample", "replay", "--timeout", "200ms").check(t, 1, nil, []string{"Unauthenticated"})
	t.Setenv(tokenEnv, "s3cret")
	ctl(t, "--addr", addr, "info").check(t, 0, []string{"replay"}, nil)
	ctl(t, "--addr", addr, "--auth-token", "wrong", "info").check(t, 1, nil, []string{"Unauthenticated"}) // the flag wins
}

func TestReplayctlTLS(t *testing.T) {
	cert := testutil.SelfSignedCert(t)
	addr, _ := startServer(t, replay.ServerOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}})
	ca := testutil.WriteFile(t, "ca.pem", string(cert.CertPEM))
	ctl(t, "--addr", addr, "--tls-ca", ca, "info").check(t, 0, []string{"replay"}, nil)
	ctl(t, "--addr", addr, "--timeout", "300ms", "info").check(t, 1, nil, []string{"cannot connect"})
	ctl(t, "--addr", addr, "--timeout", "300ms", "--tls", "info").check(t, 1, nil, []string{"cannot connect"})
	ctl(t, "--addr", addr, "--tls-ca", testutil.WriteFile(t, "junk.pem", "junk"), "info").check(t, 1, nil, []string{"--tls-ca: no PEM certificates in"})
	ctl(t, "--addr", addr, "--tls-ca", filepath.Join(t.TempDir(), "none.pem"), "info").check(t, 1, nil, []string{"--tls-ca: open", "no such file"})
}

func TestReplayctlGlobalFlagArgs(t *testing.T) {
	g := defaultGlobals()
	if args := g.flagArgs(); len(args) != 0 {
		t.Errorf("defaults: %q", args)
	}
	g.addr, g.token, g.timeout, g.tls = "h:1", "tok", time.Second, true
	want := []string{"--addr=h:1", "--auth-token=tok", "--tls=true", "--timeout=1s"}
	if args := g.flagArgs(); !reflect.DeepEqual(args, want) {
		t.Errorf("flagArgs = %q, want %q", args, want)
	}
	// What flagArgs produces parses back to the same options.
	g2 := defaultGlobals()
	fs := commandFlags("bench", "", &g2, io.Discard)
	if err := fs.Parse(g.flagArgs()); err != nil || g2 != g {
		t.Errorf("round trip: %+v, %v; want %+v", g2, err, g)
	}
}

// --- real binaries ------------------------------------------------------------------

var bins testutil.Binaries

// binaries builds replayd and replayctl once per test run.
func binaries(t *testing.T) (replayd, replayctl string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	if runtime.GOOS == "windows" {
		t.Skip("uses SIGTERM")
	}
	return bins.Build(t, "../replayd"), bins.Build(t, ".")
}

var listenRE = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// ctlBinary runs the replayctl binary.
func ctlBinary(t *testing.T, path string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("replayctl %q: %v", args, err)
	}
	return r
}

func TestReplayctlBinaries(t *testing.T) {
	replayd, replayctl := binaries(t)
	cfg := testutil.WriteFile(t, "tables.yaml", testTables)

	// replayd as a subprocess, with an auth token from the environment.
	env := []string{tokenEnv + "=tok"}
	srvProc := testutil.StartProcess(t, replayd, env, "--addr", "127.0.0.1:0", "--config", cfg)
	addr := testutil.WaitFor(t, srvProc.Output, listenRE)

	r := ctlBinary(t, replayctl, nil, "--addr", addr, "info")
	r.check(t, 1, nil, []string{"Unauthenticated"})

	r = ctlBinary(t, replayctl, env, "--addr", addr, "info")
	r.check(t, 0, []string{"NAME", "RATE_LIMITER", "prioritized(0.6)", "Queue(10)", "queue: sampling blocked:", "replay: sampling blocked:"}, nil)

	r = ctlBinary(t, replayctl, env, "--addr", addr, "info", "--json")
	r.check(t, 0, nil, nil)
	var info infoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || len(info.Tables) != 2 || info.Tables[0].Name != "replay" || info.Tables[1].MaxSize != 10 {
		t.Fatalf("info --json: %v\n%s", err, r)
	}

	r = ctlBinary(t, replayctl, nil, "--addr", addr, "--auth-token", "tok", "reset", "replay")
	r.check(t, 0, []string{"reset table replay"}, nil)
	ctlBinary(t, replayctl, env, "--addr", addr, "reset", "nope").check(t, 1, nil, []string{"table not found"})

	ctlBinary(t, replayctl, env, "--addr", addr, "checkpoint").check(t, 1, nil, []string{"does not support checkpoints"})
	ctlBinary(t, replayctl, env, "--addr", addr, "--timeout", "200ms", "sample", "queue").check(t, 1, nil, []string{"rate limiter blocks sampling"})
	ctlBinary(t, replayctl, env, "--addr", addr, "explode").check(t, 2, nil, []string{`unknown command "explode"`, "Usage:"})
	ctlBinary(t, replayctl, nil).check(t, 2, nil, []string{"no command"})

	// Sampling items, against an in-process server that has some.
	srvAddr, srv := startServer(t, replay.ServerOptions{})
	insert(t, srv, "replay", []float64{1, 2, 3})
	r = ctlBinary(t, replayctl, nil, "--addr", srvAddr, "sample", "replay", "-n", "2", "--json")
	r.check(t, 0, nil, nil)
	if n := strings.Count(r.stdout, "\n"); n != 2 || !strings.Contains(r.stdout, `"table_size":3`) {
		t.Errorf("sample: %d lines\n%s", n, r)
	}
	r = ctlBinary(t, replayctl, nil, "--addr", srvAddr, "sample", "replay")
	if r.check(t, 0, nil, nil); !sampleLineRE.MatchString(strings.TrimSpace(r.stdout)) {
		t.Errorf("sample line %q does not match %s", r.stdout, sampleLineRE)
	}

	srvProc.Signal(t, syscall.SIGTERM)
	if code := srvProc.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("replayd: exit %d\n%s", code, srvProc.Output.String())
	}
}

// bench runs against a server, also with --timeout 0 (no limit, not an
// already expired dial).
func TestReplayctlBench(t *testing.T) {
	addr, _ := startServer(t, replay.ServerOptions{})
	for _, timeout := range []string{"10s", "0"} {
		r := ctl(t, "--addr", addr, "--timeout", timeout, "bench", "--table", "replay", "--duration", "100ms", "--json")
		r.check(t, 0, []string{`"mode":"insert"`}, nil)
	}
}
