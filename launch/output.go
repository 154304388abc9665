package launch

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// tailLines is how many stderr lines of a failed child are reported.
const tailLines = 20

// maxLine caps a buffered partial line; longer lines are split.
const maxLine = 64 << 10

// ring keeps the last lines written to it.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRing(n int) *ring { return &ring{lines: make([]string, n)} }

func (r *ring) add(line string) {
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

func (r *ring) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.lines[:r.next]...)
	}
	return append(append([]string(nil), r.lines[r.next:]...), r.lines[:r.next]...)
}

// lockedWriter serialises whole-line writes of several nodes to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) writeLine(prefix, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := make([]byte, 0, len(prefix)+len(line)+1)
	buf = append(append(append(buf, prefix...), line...), '\n')
	_, _ = l.w.Write(buf)
}

// lineWriter cuts what a child writes into lines, keeps the tail (if any)
// and writes each line with a prefix to dst.
type lineWriter struct {
	prefix []byte
	dst    *lockedWriter
	tail   *ring
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, p[:i]...)
			w.emit(w.buf)
			w.buf = w.buf[:0]
		} else {
			w.emit(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if w.tail != nil {
		w.tail.add(string(line))
	}
	w.dst.writeLine(w.prefix, line)
}

// flush writes a last partial line.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

// colors are the ANSI colours of the nodes' prefixes.
var colors = []string{"36", "33", "35", "32", "34", "31", "96", "93", "95", "92", "94", "91"}

// output routes children's stdout and stderr.
type output struct {
	mode   Terminal
	stdout *lockedWriter
	stderr *lockedWriter
	color  bool
	dir    string
	tmux   string // session name, under TmuxSession
	// files are the log files by node ID; written before the units start.
	files map[string]*lockedWriter
}

func newOutput(r *Run) (*output, error) {
	o := &output{
		mode:   r.o.terminal,
		stdout: &lockedWriter{w: r.o.stdout},
		stderr: &lockedWriter{w: r.o.stderr},
		files:  map[string]*lockedWriter{},
	}
	if r.o.color != nil {
		o.color = *r.o.color
	} else {
		o.color = isTerminal(r.o.stdout) && os.Getenv("NO_COLOR") == ""
	}
	if o.mode == CurrentTerminal {
		return o, nil
	}
	o.dir = r.o.logDir
	if o.dir == "" {
		o.dir = os.Getenv("RECALL_LP_LOG_DIR")
	}
	if o.dir == "" {
		name := fmt.Sprintf("%s-%s-%d", safeName(r.p.Name()), time.Now().Format("20060102-150405"), os.Getpid())
		o.dir = filepath.Join(os.TempDir(), "recall_lp_out", name)
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, fmt.Errorf("launch: log dir: %w", err)
	}
	for _, u := range r.units {
		f, err := os.OpenFile(o.logFile(u), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			o.close()
			return nil, fmt.Errorf("launch: log file: %w", err)
		}
		o.files[u.id.String()] = &lockedWriter{w: f}
	}
	r.log.Info("node output goes to files", "dir", o.dir)
	if o.mode == TmuxSession {
		o.tmux = r.o.tmuxSession
		if o.tmux == "" {
			o.tmux = fmt.Sprintf("%s-%d", safeName(r.p.Name()), os.Getpid())
		}
		if err := o.startTmux(r.units); err != nil {
			o.close()
			return nil, err
		}
		r.log.Info("tmux session started", "session", o.tmux, "attach", "tmux attach -t "+o.tmux)
	}
	return o, nil
}

func (o *output) logFile(u *unit) string {
	return filepath.Join(o.dir, strings.ReplaceAll(u.id.String(), "/", "_")+".log")
}

// startTmux opens a detached session with one window per node, each
// following the node's log file.
func (o *output) startTmux(units []*unit) error {
	if _, err := exec.LookPath("tmux"); err != nil {
		return fmt.Errorf("launch: terminal %s: %w", TmuxSession, err)
	}
	for i, u := range units {
		cmd := "tail -n +1 -F " + shellQuote(o.logFile(u))
		var args []string
		if i == 0 {
			args = []string{"new-session", "-d", "-s", o.tmux, "-n", u.id.String(), cmd}
		} else {
			args = []string{"new-window", "-d", "-t", o.tmux + ":", "-n", u.id.String(), cmd}
		}
		if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("launch: tmux %s: %v: %s", args[0], err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// forUnit returns the writers of attempt n of u and the stderr tail.
func (o *output) forUnit(u *unit, n int) (stdout, stderr *lineWriter, tail *ring) {
	tail = newRing(tailLines)
	if f := o.files[u.id.String()]; f != nil {
		if n > 0 {
			f.writeLine(nil, fmt.Appendf(nil, "=== restart %d of %s at %s ===", n, u.id, time.Now().Format(time.RFC3339)))
		}
		return &lineWriter{dst: f}, &lineWriter{dst: f, tail: tail}, tail
	}
	prefix := "[" + u.id.String() + "] "
	if o.color {
		prefix = "\x1b[" + colors[u.color%len(colors)] + "m[" + u.id.String() + "]\x1b[0m "
	}
	return &lineWriter{prefix: []byte(prefix), dst: o.stdout}, &lineWriter{prefix: []byte(prefix), dst: o.stderr, tail: tail}, tail
}

func (o *output) close() {
	for _, f := range o.files {
		if c, ok := f.w.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func safeName(s string) string {
	if s == "" {
		return "program"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
