package launch

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// LaunchType selects how a program runs.
type LaunchType string

// Launch types.
const (
	// LocalMT runs every node in the launching process, as goroutines.
	LocalMT LaunchType = "local_mt"
	// LocalMP runs every node in a child process: the launching binary
	// re-executed, building the same program and running only that node.
	LocalMP LaunchType = "local_mp"
	// TestMT runs every node in the launching process, for tests: nodes'
	// runs can be disabled (WithDisabledRun), handles dereferenced from the
	// test, and signals are left alone. See StartTest.
	TestMT LaunchType = "test_mt"
)

func (t LaunchType) valid() bool { return t == LocalMT || t == LocalMP || t == TestMT }

// Terminal selects where the output of local_mp nodes goes.
type Terminal string

// Terminals (the names are Launchpad's).
const (
	// CurrentTerminal writes every node's lines to the launcher's stdout
	// and stderr, prefixed with the node ID in coloured brackets. The default.
	CurrentTerminal Terminal = "current_terminal"
	// OutputToFiles writes one log file per node (stdout and stderr) in a
	// directory: WithLogDir, --lp_log_dir, $RECALL_LP_LOG_DIR, or a new
	// directory under $TMPDIR/recall_lp_out.
	OutputToFiles Terminal = "output_to_files"
	// TmuxSession writes the log files as OutputToFiles does and opens a
	// detached tmux session with one window per node showing its file.
	TmuxSession Terminal = "tmux_session"
)

func (t Terminal) valid() bool {
	return t == CurrentTerminal || t == OutputToFiles || t == TmuxSession
}

// Defaults.
const (
	// DefaultGracePeriod is how long nodes get to return after a stop
	// before they are killed (local_mp) or abandoned (local_mt, test_mt).
	DefaultGracePeriod = 10 * time.Second
	// DefaultTestGracePeriod is the grace period under test_mt.
	DefaultTestGracePeriod = 5 * time.Second
	// DefaultBackoff is the delay before a first restart.
	DefaultBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the delay between restarts.
	DefaultMaxBackoff = 10 * time.Second
)

// RestartPolicy says how often the nodes of a group (a label) are
// restarted when they fail: a node function or Run method returning an
// error (or panicking), or, under local_mp, a child process exiting with a
// non-zero status. Nodes that return nil are not restarted, and nothing is
// restarted once the program is stopping.
type RestartPolicy struct {
	// MaxRestarts is how many times each node of the group may be
	// restarted; 0 means never. When a node fails once more, its failure
	// stops the program.
	MaxRestarts int
	// Backoff is the delay before the first restart, doubled for each
	// further one. 0 means DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps the delay. 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// delay returns the backoff before restart n (from 0).
func (rp RestartPolicy) delay(n int) time.Duration {
	d, maxd := rp.Backoff, rp.MaxBackoff
	if d <= 0 {
		d = DefaultBackoff
	}
	if maxd <= 0 {
		maxd = DefaultMaxBackoff
	}
	for i := 0; i < n && d < maxd; i++ {
		d *= 2
	}
	return min(d, maxd)
}

// Option configures Launch and Start. Options override the --lp_* flags.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	launchType  LaunchType
	grace       time.Duration
	graceSet    bool
	terminal    Terminal
	logDir      string
	restarts    map[string]RestartPolicy
	disabled    []string
	args        []string
	argsSet     bool
	env         []string
	stdout      io.Writer
	stderr      io.Writer
	logger      *slog.Logger
	signals     *bool
	color       *bool
	exe         string
	tmuxSession string
}

// WithLaunchType selects the launch type, overriding --lp_launch_type.
func WithLaunchType(t LaunchType) Option {
	return optionFunc(func(o *options) { o.launchType = t })
}

// WithGracePeriod sets how long nodes get to return after a stop before
// they are killed (local_mp) or abandoned (local_mt, test_mt), overriding
// --lp_grace_period. 0 kills at once.
func WithGracePeriod(d time.Duration) Option {
	return optionFunc(func(o *options) { o.grace, o.graceSet = d, true })
}

// WithTerminal selects where local_mp nodes' output goes, overriding
// --lp_terminal.
func WithTerminal(t Terminal) Option {
	return optionFunc(func(o *options) { o.terminal = t })
}

// WithLogDir sets the directory of per-node log files (OutputToFiles and
// TmuxSession), overriding --lp_log_dir.
func WithLogDir(dir string) Option {
	return optionFunc(func(o *options) { o.logDir = dir })
}

// WithRestartPolicy sets the restart policy of the nodes labelled label.
func WithRestartPolicy(label string, rp RestartPolicy) Option {
	return optionFunc(func(o *options) {
		if o.restarts == nil {
			o.restarts = map[string]RestartPolicy{}
		}
		o.restarts[label] = rp
	})
}

// WithDisabledRun disables the run of the nodes named by labels or IDs
// ("consumer", "producer/1"), Launchpad's disable_run, for tests: a
// function node does not call its function; a courier node is built and
// serves but its Run method is not called, so a test can call it through a
// handle.
func WithDisabledRun(labelsOrIDs ...string) Option {
	return optionFunc(func(o *options) { o.disabled = append(o.disabled, labelsOrIDs...) })
}

// WithArgs sets the command-line arguments (without the program name) that
// the --lp_* flags are read from and that local_mp children get. The
// default is os.Args[1:].
func WithArgs(args []string) Option {
	return optionFunc(func(o *options) { o.args, o.argsSet = args, true })
}

// WithEnv adds "KEY=value" environment variables for local_mp children, on
// top of the launcher's environment.
func WithEnv(kv ...string) Option {
	return optionFunc(func(o *options) { o.env = append(o.env, kv...) })
}

// WithOutput sets where the launcher writes local_mp nodes' prefixed lines
// (stdout and stderr) and its own messages (stderr, unless WithLogger).
// The defaults are os.Stdout and os.Stderr.
func WithOutput(stdout, stderr io.Writer) Option {
	return optionFunc(func(o *options) { o.stdout, o.stderr = stdout, stderr })
}

// WithLogger sets the logger for the launcher's own messages (node
// failures, restarts, kills). The default writes text to stderr.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithSignalHandling sets whether Launch handles SIGINT and SIGTERM while
// the program runs: the first one stops the program (the grace period
// applies), a second one kills it at once. On by default, except under
// test_mt.
func WithSignalHandling(on bool) Option {
	return optionFunc(func(o *options) { o.signals = &on })
}

// WithColor forces the colouring of node prefixes on or off. By default
// they are coloured when stdout is a terminal and $NO_COLOR is unset.
func WithColor(on bool) Option {
	return optionFunc(func(o *options) { o.color = &on })
}

// WithExecutable sets the binary local_mp re-executes for each node. The
// default is os.Executable(), the running binary. It must build the same
// program and call Launch with it.
func WithExecutable(path string) Option {
	return optionFunc(func(o *options) { o.exe = path })
}

// WithTmuxSession names the tmux session of TmuxSession output. The default
// is the program's name and the launcher's PID, so relaunching never
// collides with an old session.
func WithTmuxSession(name string) Option {
	return optionFunc(func(o *options) { o.tmuxSession = name })
}

// --- Flags --------------------------------------------------------------

// Flag names. Each takes a value: --lp_launch_type=local_mp or
// --lp_launch_type local_mp (one or two dashes).
const (
	FlagLaunchType  = "lp_launch_type"
	FlagGracePeriod = "lp_grace_period"
	FlagTerminal    = "lp_terminal"
	FlagLogDir      = "lp_log_dir"
)

var flagUsage = map[string]string{
	FlagLaunchType:  "how to launch the program: local_mt, local_mp or test_mt",
	FlagGracePeriod: "how long nodes get to stop before they are killed, e.g. 10s",
	FlagTerminal:    "local_mp output: current_terminal, output_to_files or tmux_session",
	FlagLogDir:      "directory of per-node log files (output_to_files, tmux_session)",
}

// RegisterFlags defines the --lp_* flags on fs, so that a program that
// parses its own flags with package flag accepts them (and lists them in
// -help). Launch reads their values from the command line itself, so the
// values stored in fs are not used. Call it once, before fs.Parse:
//
//	launch.RegisterFlags(flag.CommandLine)
//	flag.Parse()
func RegisterFlags(fs *flag.FlagSet) {
	for _, name := range []string{FlagLaunchType, FlagGracePeriod, FlagTerminal, FlagLogDir} {
		fs.String(name, "", flagUsage[name])
	}
}

// parseFlags reads the --lp_* flags from args into o where no option set
// them. Other arguments are skipped; parsing stops at "--". An unknown
// --lp_ flag is an error, to catch typos.
func parseFlags(args []string, o *options) error {
	vals := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			name, ok = strings.CutPrefix(a, "-")
		}
		if !ok || !strings.HasPrefix(name, "lp_") {
			continue
		}
		name, val, hasVal := strings.Cut(name, "=")
		if _, known := flagUsage[name]; !known {
			return fmt.Errorf("launch: unknown flag -%s (known: -%s, -%s, -%s, -%s)", name, FlagLaunchType, FlagGracePeriod, FlagTerminal, FlagLogDir)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return fmt.Errorf("launch: flag -%s needs a value", name)
			}
			i++
			val = args[i]
		}
		vals[name] = val
	}
	if v, ok := vals[FlagLaunchType]; ok && o.launchType == "" {
		o.launchType = LaunchType(v)
	}
	if v, ok := vals[FlagGracePeriod]; ok && !o.graceSet {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("launch: -%s: %w", FlagGracePeriod, err)
		}
		o.grace, o.graceSet = d, true
	}
	if v, ok := vals[FlagTerminal]; ok && o.terminal == "" {
		o.terminal = Terminal(v)
	}
	if v, ok := vals[FlagLogDir]; ok && o.logDir == "" {
		o.logDir = v
	}
	return nil
}

// finish applies defaults and validates.
func (o *options) finish() error {
	if o.launchType == "" {
		o.launchType = LocalMT
	}
	if !o.launchType.valid() {
		return fmt.Errorf("launch: unknown launch type %q (want %s, %s or %s)", o.launchType, LocalMT, LocalMP, TestMT)
	}
	if o.terminal == "" {
		o.terminal = CurrentTerminal
	}
	if !o.terminal.valid() {
		return fmt.Errorf("launch: unknown terminal %q (want %s, %s or %s)", o.terminal, CurrentTerminal, OutputToFiles, TmuxSession)
	}
	if o.terminal != CurrentTerminal && o.launchType != LocalMP {
		return fmt.Errorf("launch: terminal %s needs launch type %s (nodes of %s share the process's output)", o.terminal, LocalMP, o.launchType)
	}
	if !o.graceSet {
		o.grace = DefaultGracePeriod
		if o.launchType == TestMT {
			o.grace = DefaultTestGracePeriod
		}
	}
	if o.grace < 0 {
		return errors.New("launch: negative grace period")
	}
	for label, rp := range o.restarts {
		if rp.MaxRestarts < 0 || rp.Backoff < 0 || rp.MaxBackoff < 0 {
			return fmt.Errorf("launch: restart policy of %q: negative value", label)
		}
	}
	if o.signals == nil {
		on := o.launchType != TestMT
		o.signals = &on
	}
	return nil
}
