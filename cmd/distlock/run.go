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

	"github.com/distlock/distlock"
)

var runCommand = &command{
	name:     "run",
	synopsis: "[flags] NAME -- COMMAND [ARGS...]",
	summary:  "run a command while holding a lock",
	about: `
Waits for the lock NAME (with --try, gives up at once when it is held), then
runs COMMAND with stdin, stdout and stderr passed through, and with
DISTLOCK_NAME, DISTLOCK_PREFIX (the key prefix) and DISTLOCK_TOKEN (the
lease's fencing token) in its environment (the masters too, in
DISTLOCK_NODES, with --pass-nodes). The lease renews itself while
COMMAND runs; SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to
COMMAND; the lock is released when COMMAND and every process it started
have exited, and distlock exits with COMMAND's status.

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

func runMain(c *command, args []string, stdout, stderr io.Writer) int {
	f := newFlags(c)
	o := runOptions{cmd: "run"}
	o.lockFlags(f)
	f.durationVar(&o.grace, "grace", 5*time.Second, "time between SIGTERM and SIGKILL for processes ended (a `duration`, or seconds)")
	f.BoolVar(&o.passNodes, "pass-nodes", false, "give COMMAND the masters in DISTLOCK_NODES (they may hold passwords),\nwhichever of --nodes, --nodes-file or the environment named them\n(by default COMMAND gets no DISTLOCK_NODES)")
	if status, done := f.parse(args, stdout, stderr); done {
		return status
	}
	cfg, err := o.check(f, args)
	if err != nil {
		return f.fail(stderr, err)
	}
	o.nodes, o.prefix = cfg.Nodes, cfg.KeyPrefix
	// Resolve COMMAND before taking the lock, as a shell would, so that a
	// typo costs no lock.
	o.path, err = exec.LookPath(o.argv[0])
	if errors.Is(err, exec.ErrDot) {
		err = nil // a shell would run ./name found through PATH too
	}
	if err != nil {
		return execFailed(stderr, o.argv[0], err)
	}
	sigs, stop := notifyStop()
	defer stop()
	client, status := o.connect(f, cfg, sigs, stderr)
	if client == nil {
		return status
	}
	defer closeSoon(client)
	return o.run(client, sigs, stderr)
}

// releaseBounded releases l. Release waits for the masters' answers, each
// at most the per-master timeout; the 5 s bound is for a master that
// accepts connections but never answers.
func releaseBounded(l *distlock.Lease) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.Release(ctx)
}

// stopSignals are the signals run passes on to COMMAND, and that end hold
// and watch (exit 0, no stack dump for SIGQUIT).
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// notifyStop catches stopSignals from now on, before run
// or hold connects (a signal then ends it with a message), until stop.
func notifyStop() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 4)
	signal.Notify(sigs, stopSignals...)
	return sigs, func() { signal.Stop(sigs) }
}

// run takes the lock, runs the command and returns the exit status.
func (o *runOptions) run(c *distlock.Client, sigs chan os.Signal, stderr io.Writer) int {
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
		fmt.Fprintf(stderr, "distlock run: %s; %s not run\n", errText(err), o.argv[0])
		return exitLost
	}

	cmd := exec.Command(o.path, o.argv[1:]...)
	cmd.Args[0] = o.argv[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	env := withoutVar(os.Environ(), "DISTLOCK_NODES")
	if o.passNodes && len(o.nodes) > 0 {
		// The masters this run uses, whichever flag or variable named
		// them: a distlock inside then reads the same ones.
		env = append(withoutVar(env, "DISTLOCK_NODES_FILE"), "DISTLOCK_NODES="+strings.Join(o.nodes, ","))
	}
	cmd.Env = append(withoutVar(env, "DISTLOCK_PREFIX"),
		"DISTLOCK_NAME="+o.name,
		"DISTLOCK_PREFIX="+o.prefix, // not secret: a distlock inside reads the same lock
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
			fmt.Fprintf(stderr, "distlock run: %s\n", errText(err))
		}
		release()
		fmt.Fprintf(stderr, "distlock run: %s ended (%s) after the lease on %q was lost\n", o.argv[0], end.how, o.name)
		return exitLost
	}
	if err := release(); err != nil {
		// The command ran to its end holding the lock: its status
		// stands. Keys that could not be deleted expire with the TTL.
		fmt.Fprintf(stderr, "distlock run: releasing %q: %s\n", o.name, errText(err))
	}
	return end.status
}

// jobEnd is how a job ended.
type jobEnd struct {
	status  int    // COMMAND's exit status, as a shell reports it
	how     string // COMMAND's end in words: "exit status 3", "signal: killed"
	stopped bool   // the job was stopped because the lease was lost
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
