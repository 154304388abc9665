package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recall-rl/recall/internal/testutil"
	"github.com/recall-rl/recall/replay"
)

var bins testutil.Binaries

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

// replaydBinary builds the replayd binary once per test run.
func replaydBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("uses SIGTERM")
	}
	return bins.Build(t, ".")
}

var (
	listenRE        = regexp.MustCompile(`msg="listening on (127\.0\.0\.1:\d+)"`)
	metricsListenRE = regexp.MustCompile(`msg="metrics listening on (127\.0\.0\.1:\d+)"`)
)

const twoTables = `
tables:
  - name: replay
    sampler: {kind: prioritized, priority_exponent: 0.6}
    max_size: 1000
    rate_limiter: {sample_to_insert_ratio: {samples_per_insert: 4, min_size_to_sample: 10, error_buffer: 20}}
  - name: queue
    sampler: fifo
    max_size: 10
    max_times_sampled: 1
    rate_limiter: {queue: 10}
`

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

func serverInfo(t *testing.T, c *replay.Client) replay.ServerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	si, err := c.ServerInfo(ctx)
	if err != nil {
		t.Fatalf("ServerInfo: %v", err)
	}
	return si
}

func tableNames(si replay.ServerInfo) []string {
	var names []string
	for _, t := range si.Tables {
		names = append(names, t.Name)
	}
	return names
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	client.CloseIdleConnections()
	return resp.StatusCode, string(body)
}

// inProcess runs run() in a goroutine until the test cancels it.
type inProcess struct {
	cancel context.CancelFunc
	stdout *testutil.SyncBuffer
	stderr *testutil.SyncBuffer
	done   chan int
}

func startInProcess(t *testing.T, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{cancel: cancel, stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan int, 1)}
	go func() { p.done <- run(ctx, args, p.stdout, p.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("run did not return after cancel")
		}
	})
	return p
}

// stop cancels run's context and returns its exit status.
func (p *inProcess) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		p.done <- code // for the cleanup
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not return after cancel; stderr:\n%s", p.stderr.String())
		return -1
	}
}

func TestReplaydInProcess(t *testing.T) {
	cfg := testutil.WriteFile(t, "tables.yaml", twoTables)
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--config", cfg, "--log-level", "debug")
	addr := testutil.WaitFor(t, p.stderr, listenRE)
	maddr := testutil.WaitFor(t, p.stderr, metricsListenRE)

	si := serverInfo(t, dial(t, addr))
	if got, want := tableNames(si), []string{"replay", "queue"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}
	if s := si.Tables[0].Sampler.String(); s != "prioritized(0.6)" {
		t.Errorf("replay sampler %s", s)
	}
	if s := si.Tables[1].RateLimiter.String(); s != "Queue(10)" {
		t.Errorf("queue limiter %s", s)
	}

	code, body := httpGet(t, "http://"+maddr+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, `replay_table_max_size{table="queue"} 10`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := httpGet(t, "http://"+maddr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+maddr+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}

	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr.String())
	}
	out := p.stderr.String()
	if n := len(listenRE.FindAllString(out, -1)); n != 1 {
		t.Errorf("%d 'listening on' lines, want 1:\n%s", n, out)
	}
	for _, want := range []string{"shutting down", "msg=stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	// The gRPC address comes before the metrics one.
	if strings.Index(out, "msg=\"listening on") > strings.Index(out, "metrics listening on") {
		t.Errorf("metrics address logged before the replay address:\n%s", out)
	}
}

func TestReplaydJSONLogs(t *testing.T) {
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--log-format", "json")
	addr := testutil.WaitFor(t, p.stderr, regexp.MustCompile(`"msg":"listening on (127\.0\.0\.1:\d+)"`))
	if si := serverInfo(t, dial(t, addr)); !reflect.DeepEqual(tableNames(si), []string{"default"}) {
		t.Fatalf("tables %v", tableNames(si))
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for line := range strings.Lines(p.stderr.String()) {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("not a JSON log line: %q", line)
		}
	}
}

func TestReplaydDefaultConfig(t *testing.T) {
	got, err := replay.ParseConfig(defaultConfig, "yaml", "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := replay.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("embedded default config %+v\nwant replay.DefaultConfig() %+v", got, want)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--print-default-config"}, &stdout, &stderr); code != 0 || !bytes.Equal(stdout.Bytes(), defaultConfig) {
		t.Fatalf("--print-default-config: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestReplaydAuthTokenInProcess(t *testing.T) {
	t.Setenv(tokenEnv, "from-env") // the flag wins
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--auth-token", "s3cret")
	addr := testutil.WaitFor(t, p.stderr, listenRE)
	if !strings.Contains(p.stderr.String(), "auth=true") {
		t.Errorf("listening line does not report auth:\n%s", p.stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"", false}, {"from-env", false}, {"wrong", false}, {"s3cret", true}} {
		var opts []replay.Option
		if tc.token != "" {
			opts = append(opts, replay.WithAuthToken(tc.token))
		}
		_, err := dial(t, addr, opts...).ServerInfo(ctx)
		if tc.ok && err != nil {
			t.Errorf("token %q: %v", tc.token, err)
		}
		if !tc.ok && !errors.Is(err, replay.ErrUnauthenticated) {
			t.Errorf("token %q: err = %v, want ErrUnauthenticated", tc.token, err)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestReplaydTLS(t *testing.T) {
	cert := testutil.SelfSignedCert(t)
	certFile := testutil.WriteFile(t, "cert.pem", string(cert.CertPEM))
	keyFile := testutil.WriteFile(t, "key.pem", string(cert.KeyPEM))
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	addr := testutil.WaitFor(t, p.stderr, listenRE)
	si := serverInfo(t, dial(t, addr, replay.WithTLS(&tls.Config{RootCAs: cert.Pool})))
	if len(si.Tables) != 1 {
		t.Fatalf("tables %v", tableNames(si))
	}
	// A plaintext client does not get through.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if c, err := replay.Dial(ctx, addr); err == nil {
		_, err = c.ServerInfo(ctx)
		c.Close()
		if err == nil {
			t.Errorf("plaintext client got server info from a TLS server")
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestReplaydCommandLineErrors(t *testing.T) {
	badConfig := testutil.WriteFile(t, "config.yaml", "tables:\n  - name: a\n  - name: b\n    sampler: prio\n")
	badRatio := testutil.WriteFile(t, "ratio.json", `{"tables": [{"name": "a", "rate_limiter": {"sample_to_insert_ratio": {"samples_per_insert": 4, "min_size_to_sample": 1000, "error_buffer": 1}}}]}`)
	dup := testutil.WriteFile(t, "dup.yml", "tables: [{name: a}, {name: a}]\n")
	empty := testutil.WriteFile(t, "empty.yaml", "tables: []\n")
	notPEM := testutil.WriteFile(t, "x.pem", "not a certificate")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string // substrings of stderr
		stdout string   // substring of stdout
	}{
		{"bad sampler", []string{"--config", badConfig}, 2,
			[]string{"replayd: invalid config: " + badConfig + `: tables[1].sampler: unknown selector "prio"`, "(line 4)"}, ""},
		{"bad limiter", []string{"--config", badRatio}, 2,
			[]string{badRatio + ": tables[0].rate_limiter.sample_to_insert_ratio.error_buffer: ", "must be at least 2*max(1, samples_per_insert) = 8"}, ""},
		{"duplicate tables", []string{"--config", dup}, 2, []string{dup + `: tables[1].name: duplicate table name "a"`}, ""},
		{"empty tables", []string{"--config", empty}, 2, []string{empty + ": tables: empty"}, ""},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, 2, []string{"none.yaml: open ", "no such file"}, ""},
		{"config extension", []string{"--config", notPEM}, 2, []string{`unknown config format ".pem"`}, ""},
		{"unknown flag", []string{"--nope"}, 2, []string{"flag provided but not defined: -nope", "Usage: replayd"}, ""},
		{"extra arguments", []string{"serve"}, 2, []string{"replayd: unexpected arguments: serve", "Usage: replayd"}, ""},
		{"bad duration", []string{"--shutdown-timeout", "soon"}, 2, []string{"invalid value \"soon\""}, ""},
		{"negative shutdown timeout", []string{"--shutdown-timeout", "-1s"}, 2, []string{"--shutdown-timeout -1s: must be >= 0"}, ""},
		{"negative message size", []string{"--max-message-bytes", "-1"}, 2, []string{"--max-message-bytes -1"}, ""},
		{"bad log level", []string{"--log-level", "loud"}, 2, []string{`--log-level "loud": want debug, info, warn or error`}, ""},
		{"bad log format", []string{"--log-format", "xml"}, 2, []string{`--log-format "xml": want text or json`}, ""},
		{"cert without key", []string{"--tls-cert", notPEM}, 2, []string{"--tls-cert and --tls-key must be given together"}, ""},
		{"bad key pair", []string{"--tls-cert", notPEM, "--tls-key", notPEM}, 2, []string{"cannot load TLS key pair"}, ""},
		{"address in use", []string{"--addr", busy.Addr().String()}, 1, []string{"cannot listen", "address already in use"}, ""},
		{"bad address", []string{"--addr", "127.0.0.1:99999"}, 1, []string{"cannot listen"}, ""},
		{"metrics address in use", []string{"--addr", "127.0.0.1:0", "--metrics-addr", busy.Addr().String()}, 1, []string{"cannot listen for metrics"}, ""},
		{"version", []string{"--version"}, 0, nil, "replayd " + replay.Version + " (go"},
		{"help", []string{"-h"}, 0, []string{"Usage: replayd", "-shutdown-timeout", "-metrics-addr", "REPLAY_AUTH_TOKEN"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
		})
	}
}

// startProcess starts the replayd binary.
func startProcess(t *testing.T, env []string, args ...string) *testutil.Process {
	t.Helper()
	return testutil.StartProcess(t, replaydBinary(t), env, args...)
}

func TestReplaydBinary(t *testing.T) {
	cfg := testutil.WriteFile(t, "tables.yaml", twoTables)
	p := startProcess(t, nil, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--config", cfg)
	addr := testutil.WaitFor(t, p.Output, listenRE)
	maddr := testutil.WaitFor(t, p.Output, metricsListenRE)

	c := dial(t, addr)
	si := serverInfo(t, c)
	if got, want := tableNames(si), []string{"replay", "queue"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}
	if si.Version != replay.Version || si.TablesStateID == "" {
		t.Errorf("version %q, state id %q", si.Version, si.TablesStateID)
	}
	code, body := httpGet(t, "http://"+maddr+"/metrics")
	for _, want := range []string{
		"# TYPE replay_table_size gauge",
		`replay_table_size{table="replay"} 0`,
		`replay_table_max_size{table="replay"} 1000`,
		`replay_sampled_items_total{table="queue"} 0`,
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, want, body)
		}
	}
	if code, _ := httpGet(t, "http://"+maddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}

	start := time.Now()
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, p.Output.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start))
	if out := p.Output.String(); len(listenRE.FindAllString(out, -1)) != 1 || !strings.Contains(out, "msg=stopped") {
		t.Errorf("stderr:\n%s", out)
	}
}

// A client waiting for the rate limiter must not hold up shutdown.
func TestReplaydBinaryShutdownWithWaitingSampler(t *testing.T) {
	p := startProcess(t, nil, "--addr", "127.0.0.1:0", "--shutdown-timeout", "30s")
	addr := testutil.WaitFor(t, p.Output, listenRE)
	c := dial(t, addr)
	smp, err := c.NewSampler("default", replay.WithPrefetch(1))
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Close()
	// Wait until the server sees the blocked sample.
	deadline := time.Now().Add(10 * time.Second)
	for serverInfo(t, c).Tables[0].SamplesWaiting == 0 {
		if time.Now().After(deadline) {
			t.Fatal("sample never waited")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Signal(t, syscall.SIGINT)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.Output.String())
	}
	// The sampler's stream ended with the shutdown: connections were not
	// left open until the (30 s) grace period ran out and were cut.
	if out := p.Output.String(); strings.Contains(out, "grace period over") {
		t.Errorf("shutdown waited out the grace period with a waiting sampler; stderr:\n%s", out)
	}
}

func TestReplaydBinaryBadConfig(t *testing.T) {
	cfg := testutil.WriteFile(t, "config.yaml", "tables:\n  - name: replay\n    max_size: 10\n    rate_limiter: {min_size: 0}\n")
	p := startProcess(t, nil, "--addr", "127.0.0.1:0", "--config", cfg)
	if code := p.Wait(t, 10*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, p.Output.String())
	}
	want := cfg + ": tables[0].rate_limiter.min_size: MinSize(0): min_size_to_sample must be >= 1, got 0 (line 4)"
	if !strings.Contains(p.Output.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Output.String())
	}
	if strings.Contains(p.Output.String(), "listening on") {
		t.Errorf("served despite a bad config:\n%s", p.Output.String())
	}
}

func TestReplaydBinaryAuthToken(t *testing.T) {
	p := startProcess(t, []string{tokenEnv + "=env-token"}, "--addr", "127.0.0.1:0")
	addr := testutil.WaitFor(t, p.Output, listenRE)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := dial(t, addr).ServerInfo(ctx); !errors.Is(err, replay.ErrUnauthenticated) {
		t.Errorf("without a token: err = %v, want ErrUnauthenticated", err)
	}
	if _, err := dial(t, addr, replay.WithAuthToken("nope")).ServerInfo(ctx); !errors.Is(err, replay.ErrUnauthenticated) {
		t.Errorf("wrong token: err = %v, want ErrUnauthenticated", err)
	}
	if _, err := dial(t, addr, replay.WithAuthToken("env-token")).ServerInfo(ctx); err != nil {
		t.Errorf("with the token from %s: %v", tokenEnv, err)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
