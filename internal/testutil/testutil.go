// Package testutil holds helpers shared by the repository's tests: a
// concurrency-safe output buffer, a self-signed certificate, commands built
// once per test binary, and subprocesses that a test cannot leave behind.
// Only _test files import it.
package testutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers, to
// capture the output of subprocesses and goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor polls buf until re matches what was written, for up to 20s, and
// returns the match's first group. It fails the test if nothing matches.
func WaitFor(t testing.TB, buf *SyncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m[1]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no match for %s in output:\n%s", re, buf.String())
	return ""
}

// WriteFile writes content to a file called name in a new temporary
// directory of the test and returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Cert is a self-signed certificate for 127.0.0.1, valid from an hour ago
// to an hour from now.
type Cert struct {
	// TLS holds the certificate and its key, for a server.
	TLS tls.Certificate
	// Pool trusts the certificate, for a client.
	Pool *x509.CertPool
	// CertPEM and KeyPEM are the certificate and its key in PEM form.
	CertPEM, KeyPEM []byte
}

// SelfSignedCert makes a new Cert.
func SelfSignedCert(t testing.TB) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "recall test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return Cert{
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Pool:    pool,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
}

// Binaries builds Go commands at most once per test binary, into a
// temporary directory. Declare one per test package and call Remove from
// TestMain once the tests have run.
type Binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]built // by package
}

type built struct {
	path string
	err  error
}

// Build returns the binary of the command in directory pkg (relative to the
// test's directory, such as "." or "../replayd"), named after that
// directory, building it on the first call. A failed build fails this test
// and every later one that asks for it.
func (b *Binaries) Build(t testing.TB, pkg string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.built[pkg]
	if !ok {
		r = b.build(pkg)
		if b.built == nil {
			b.built = map[string]built{}
		}
		b.built[pkg] = r
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

func (b *Binaries) build(pkg string) built {
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "recall-test-bin-")
		if err != nil {
			return built{err: err}
		}
		b.dir = dir
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return built{err: err}
	}
	path := filepath.Join(b.dir, filepath.Base(abs))
	if out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput(); err != nil {
		return built{err: fmt.Errorf("go build %s: %v\n%s", pkg, err, out)}
	}
	return built{path: path}
}

// Remove deletes the binaries.
func (b *Binaries) Remove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// Process is a subprocess of a test, killed when the test ends if it is
// still running.
type Process struct {
	Cmd *exec.Cmd
	// Output collects the process's stdout and stderr.
	Output *SyncBuffer

	done chan struct{} // closed when Wait returned
	err  error         // Wait's result
}

// StartProcess starts path with args, with env added to the test's
// environment.
func StartProcess(t testing.TB, path string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{Cmd: cmd, Output: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("kill %s: %v", path, err)
			}
			<-p.done
		}
	})
	return p
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (-1 if a signal killed it).
func (p *Process) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; output:\n%s", p.Cmd.Path, timeout, p.Output.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := errors.AsType[*exec.ExitError](p.err); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
