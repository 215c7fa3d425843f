package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/distlock/distlock"
)

var runCommand = &command{
	name:     "run",
	synopsis: "[flags] NAME -- COMMAND [ARGS...]",
	summary:  "run a command while holding a lock",
	about: `
Waits for the lock NAME (with --try, gives up at once when it is held), then
runs COMMAND with stdin, stdout and stderr passed through, and with
DISTLOCK_NAME and DISTLOCK_TOKEN (the lease's fencing token) in its
environment. The lease renews itself while COMMAND runs; SIGINT, SIGTERM,
SIGHUP and SIGQUIT are passed on to COMMAND; the lock is released when
COMMAND and every process it started have exited, and distlock exits with
COMMAND's status.

COMMAND runs in a process group of its own; in the foreground of a
terminal it gets the terminal, as a shell gives it to a job, so it can read
it and Ctrl-C reaches it. Processes it leaves running when it exits get
SIGTERM, then SIGKILL after --grace. When the lease is lost, COMMAND and
every process it started get SIGTERM, then SIGKILL after --grace, and
distlock exits with 122. Ctrl-Z stops COMMAND and distlock together; on fg,
a lease that lapsed meanwhile kills COMMAND before it runs again (122). On
Linux, COMMAND is killed if distlock is.

Exit status: COMMAND's own; 122 lease lost; 123 masters unreachable;
124 lock not acquired (held with --try, or --timeout ran out); 125 usage;
126 COMMAND not executable; 127 COMMAND not found; 128+n killed by signal n.`,
	run: runMain,
}

// runOptions is what the run (or hold) command line says.
type runOptions struct {
	cmd         string // "run" or "hold"
	name        string
	argv        []string // COMMAND and its arguments; none for hold
	path        string   // COMMAND, resolved
	ttl         time.Duration
	timeout     time.Duration // 0: wait as long as it takes
	try         bool
	notAcquired int  // exit status when the lock is not acquired
	quiet       bool // no message when the lock is not acquired
	grace       time.Duration
	passNodes   bool   // leave DISTLOCK_NODES in COMMAND's environment
	owner       string // Config.Owner; "" for the default, hostname:pid
	metadata    string // WithMetadata
}

// lockFlags defines the flags that say how run and hold take the lock,
// with flock's names beside distlock's.
func (o *runOptions) lockFlags(f *flags) {
	f.durationVar(&o.ttl, "ttl", distlock.DefaultTTL, "lease TTL (a `duration` like 30s, or seconds): how long the lock outlives a crashed distlock; renewed every TTL/3")
	f.durationVar(&o.timeout, "timeout", 0, "give up waiting for the lock after this long (a `duration` like 5m, or seconds; exit 124);\n0: wait as long as it takes")
	f.durationVar(&o.timeout, "w", 0, "the same as --timeout, as flock -w (seconds, or a `duration`)")
	f.BoolVar(&o.try, "try", false, "give up at once when the lock is held (exit 124)")
	f.BoolVar(&o.try, "n", false, "the same as --try, as flock -n")
	f.IntVar(&o.notAcquired, "E", exitNotAcquired, "exit status when the lock is not acquired (held with --try, or --timeout ran out), as flock -E")
	f.BoolVar(&o.quiet, "quiet", false, "say nothing when the lock is not acquired (held with --try, or --timeout ran out)")
	f.StringVar(&o.owner, "owner", "", "who holds the lock, as status and watch show it (Config.Owner), at most 128 bytes;\ndefault hostname:pid of distlock. Public: no secrets")
	f.StringVar(&o.metadata, "metadata", "", "stored with the lease, as status and watch show it (WithMetadata): a job id, say;\nat most 512 bytes. Public: no secrets")
}

func runMain(c *command, args []string, stdout, stderr io.Writer) int {
	f := newFlags(c)
	o := runOptions{cmd: "run"}
	o.lockFlags(f)
	f.durationVar(&o.grace, "grace", 5*time.Second, "time between SIGTERM and SIGKILL for processes ended (a `duration`, or seconds)")
	f.BoolVar(&o.passNodes, "pass-nodes", false, "leave DISTLOCK_NODES, which may hold passwords, in COMMAND's environment\n(by default COMMAND gets it without)")
	if status, done := f.parse(args, stdout, stderr); done {
		return status
	}
	cfg, err := o.check(f, args)
	if err != nil {
		return f.fail(stderr, err)
	}
	// Resolve COMMAND before taking the lock, as a shell would, so that a
	// typo costs no lock.
	o.path, err = exec.LookPath(o.argv[0])
	if errors.Is(err, exec.ErrDot) {
		err = nil // a shell would run ./name found through PATH too
	}
	if err != nil {
		return execFailed(stderr, o.argv[0], err)
	}
	client, err := f.connect(cfg)
	if err != nil {
		return f.fail(stderr, err)
	}
	defer closeSoon(client)
	return o.run(client, stderr)
}

// check validates the command line and returns the Client configuration.
func (o *runOptions) check(f *flags, args []string) (distlock.Config, error) {
	rest := f.Args()
	switch {
	case len(rest) < len(args) && args[len(args)-len(rest)-1] == "--":
		// The flag package took the "--" that should follow NAME.
		return distlock.Config{}, usagef("missing lock NAME before --")
	case len(rest) == 0:
		return distlock.Config{}, usagef("missing lock NAME and -- COMMAND")
	case len(rest) == 1 && rest[0] != "--":
		return distlock.Config{}, usagef("missing -- COMMAND after lock NAME %q", rest[0])
	case rest[0] == "--":
		return distlock.Config{}, usagef("missing lock NAME before --")
	case rest[1] != "--":
		return distlock.Config{}, usagef("want -- after lock NAME %q, got %q (flags go before NAME)", rest[0], rest[1])
	case len(rest) == 2:
		return distlock.Config{}, usagef("missing COMMAND after --")
	}
	o.name, o.argv = rest[0], rest[2:]
	return o.checkLock(f)
}

// checkLock validates the lock's name and the flags that say how to take
// it, and returns the Client configuration.
func (o *runOptions) checkLock(f *flags) (distlock.Config, error) {
	if err := checkName(o.name); err != nil {
		return distlock.Config{}, err
	}
	if err := positive("ttl", o.ttl); err != nil {
		return distlock.Config{}, err
	}
	if err := notNegative("timeout", o.timeout); err != nil {
		return distlock.Config{}, err
	}
	if err := notNegative("grace", o.grace); err != nil {
		return distlock.Config{}, err
	}
	if o.try && o.timeout > 0 {
		return distlock.Config{}, usagef("--try and --timeout exclude each other")
	}
	if o.notAcquired < 0 || o.notAcquired > 255 {
		return distlock.Config{}, usagef("-E %d: want an exit status from 0 to 255", o.notAcquired)
	}
	if err := checkOwner(o.owner); err != nil {
		return distlock.Config{}, err
	}
	if len(o.metadata) > distlock.MaxMetadataLen {
		return distlock.Config{}, usagef("--metadata of %d bytes is longer than %d", len(o.metadata), distlock.MaxMetadataLen)
	}
	cfg, err := f.config()
	cfg.TTL = o.ttl // New checks it against the drift margin
	cfg.Owner = o.owner
	return cfg, err
}

// checkOwner reports what is wrong with --owner, as New would refuse it,
// before any master is contacted: at most MaxOwnerLen bytes of printable
// UTF-8.
func checkOwner(owner string) error {
	if len(owner) > distlock.MaxOwnerLen {
		return usagef("--owner of %d bytes is longer than %d", len(owner), distlock.MaxOwnerLen)
	}
	if !utf8.ValidString(owner) {
		return usagef("--owner %q is not valid UTF-8", owner)
	}
	for _, r := range owner {
		if !unicode.IsPrint(r) {
			return usagef("--owner %q contains %U, which is not printable", owner, r)
		}
	}
	return nil
}

// lockOptions returns the options of the acquire.
func (o *runOptions) lockOptions() []distlock.Option {
	opts := []distlock.Option{distlock.WithTTL(o.ttl)}
	if o.metadata != "" {
		opts = append(opts, distlock.WithMetadata(o.metadata))
	}
	return opts
}

// releaseBounded releases l. Release waits for the masters' answers, each
// at most the per-master timeout; the 5 s bound is for a master that
// accepts connections but never answers.
func releaseBounded(l *distlock.Lease) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.Release(ctx)
}

// forwarded are the signals passed on to COMMAND.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// run takes the lock, runs the command and returns the exit status.
func (o *runOptions) run(c *distlock.Client, stderr io.Writer) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	lease, status := o.acquire(c, sigs, stderr)
	if lease == nil {
		return status
	}
	// Whatever happens next, the lease ends here; a lost lease's keys are
	// deleted where they still can be.
	release := func() error { return releaseBounded(lease) }

	// A signal that came while the lock was being taken: the command
	// never starts.
	select {
	case sig := <-sigs:
		release()
		fmt.Fprintf(stderr, "distlock run: %v before %s started; lock %q released\n", sig, o.argv[0], o.name)
		return exitSignal + signalNumber(sig)
	default:
	}

	// A lease lost already (the process was paused right after the
	// acquire): the command never starts.
	if err := lease.Err(); err != nil {
		release()
		fmt.Fprintf(stderr, "distlock run: %v; %s not run\n", err, o.argv[0])
		return exitLost
	}

	cmd := exec.Command(o.path, o.argv[1:]...)
	cmd.Args[0] = o.argv[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	env := os.Environ()
	if !o.passNodes {
		env = withoutVar(env, "DISTLOCK_NODES")
	}
	cmd.Env = append(env,
		"DISTLOCK_NAME="+o.name,
		"DISTLOCK_TOKEN="+strconv.FormatUint(lease.Token(), 10))
	end, err := o.supervise(lease, cmd, sigs, stderr)
	if err != nil {
		release()
		return execFailed(stderr, o.argv[0], err)
	}

	// Did the command run to its end holding the lock? Err checks the
	// lease's validity now, so a lease lost just as the job ended counts
	// as lost: distlock cannot vouch that the lock was held to the end.
	if err := lease.Err(); end.stopped || errors.Is(err, distlock.ErrLeaseLost) {
		if !end.stopped {
			fmt.Fprintf(stderr, "distlock run: %v\n", err)
		}
		release()
		fmt.Fprintf(stderr, "distlock run: %s ended (%s) after the lease on %q was lost\n", o.argv[0], end.how, o.name)
		return exitLost
	}
	if err := release(); err != nil {
		// The command ran to its end holding the lock: its status
		// stands. Keys that could not be deleted expire with the TTL.
		fmt.Fprintf(stderr, "distlock run: releasing %q: %v\n", o.name, err)
	}
	return end.status
}

// jobEnd is how a job ended.
type jobEnd struct {
	status  int    // COMMAND's exit status, as a shell reports it
	how     string // COMMAND's end in words: "exit status 3", "signal: killed"
	stopped bool   // the job was stopped because the lease was lost
}

// acquire takes the lock as the flags say. Without a lease it returns
// the exit status, having said why on stderr.
func (o *runOptions) acquire(c *distlock.Client, sigs <-chan os.Signal, stderr io.Writer) (*distlock.Lease, int) {
	ctx := context.Background()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	// While it waits, say so when too few masters answer, and again every
	// few seconds while that lasts: a lock that cannot be taken is not
	// waited for silently.
	stopReport := func() {}
	if !o.try {
		stopReport = o.reportReach(ctx, c, stderr)
	}
	// A signal while waiting ends the wait.
	var lease *distlock.Lease
	var err error
	got := untilSignal(ctx, sigs, func(ctx context.Context) {
		if o.try {
			lease, err = c.TryAcquire(ctx, o.name, o.lockOptions()...)
		} else {
			lease, err = c.Acquire(ctx, o.name, o.lockOptions()...)
		}
	})
	stopReport()
	r, known := quorumReach(err)
	switch {
	case err == nil:
		return lease, 0
	case got != nil:
		fmt.Fprintf(stderr, "distlock %s: %v while waiting for lock %q%s\n", o.cmd, got, o.name, o.notRun())
		return nil, exitSignal + signalNumber(got)
	case errors.Is(err, distlock.ErrLocked):
		switch {
		case o.quiet:
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintf(stderr, "distlock %s: lock %q not acquired within --timeout %v: held by another holder%s\n", o.cmd, o.name, o.timeout, o.notRun())
		default:
			fmt.Fprintf(stderr, "distlock %s: lock %q is held by another holder%s\n", o.cmd, o.name, o.notRun())
		}
		return nil, o.notAcquired
	case known && r.short():
		// The masters, not the lock, are what is missing: 123, --timeout
		// or not.
		within := ""
		if errors.Is(err, context.DeadlineExceeded) {
			within = fmt.Sprintf(" within --timeout %v", o.timeout)
		}
		fmt.Fprintf(stderr, "distlock %s: lock %q not acquired%s: %v%s (%s)\n", o.cmd, o.name, within, r, o.notRun(), masterErrors(err))
		return nil, exitUnreachable
	case errors.Is(err, context.DeadlineExceeded):
		if !o.quiet {
			fmt.Fprintf(stderr, "distlock %s: lock %q not acquired within --timeout %v%s\n", o.cmd, o.name, o.timeout, o.notRun())
		}
		return nil, o.notAcquired
	default:
		fmt.Fprintf(stderr, "distlock %s: lock %q not acquired%s: %s\n", o.cmd, o.name, o.notRun(), oneLine(err))
		return nil, exitUnreachable
	}
}

// notRun is what a message of run that ends it adds: that COMMAND did
// not run.
func (o *runOptions) notRun() string {
	if len(o.argv) == 0 {
		return ""
	}
	return "; " + o.argv[0] + " not run"
}

// withoutVar returns env without the variable name.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// reportReach says on stderr, from a moment after it is called and every
// few seconds, how many masters answer while too few do, until the
// returned stop is called; stop waits for it to end.
func (o *runOptions) reportReach(ctx context.Context, c *distlock.Client, stderr io.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wasShort := false
		pollReach(ctx, c, o.name, reachFirst, reachInterval, func(r reach) {
			switch {
			case r.short():
				fmt.Fprintf(stderr, "distlock %s: %v; waiting for lock %q\n", o.cmd, r, o.name)
			case wasShort:
				fmt.Fprintf(stderr, "distlock %s: %v again; waiting for lock %q\n", o.cmd, r, o.name)
			}
			wasShort = r.short()
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// While run waits, the masters are counted first after reachFirst (most
// locks are taken by then, and cost no count) and then every
// reachInterval.
const (
	reachFirst    = 200 * time.Millisecond
	reachInterval = 3 * time.Second
)

// masterErrors lists the masters' errors in err (a *distlock.QuorumError)
// on one line.
func masterErrors(err error) string {
	var qe *distlock.QuorumError
	if !errors.As(err, &qe) {
		return oneLine(err)
	}
	var b strings.Builder
	for i, e := range qe.Errs {
		if e != nil {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "master %d: %v", i, e)
		}
	}
	return b.String()
}

// oneLine returns err's message with its lines joined (errors.Join puts
// each error on a line of its own).
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// execFailed reports a command that could not be started, with the
// status a shell would give: 127 when it does not exist, 126 otherwise.
func execFailed(stderr io.Writer, name string, err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "distlock run: %s: command not found (%v)\n", name, err)
		return exitNotFound
	}
	fmt.Fprintf(stderr, "distlock run: %s: cannot execute: %v\n", name, err)
	return exitCannotExec
}
