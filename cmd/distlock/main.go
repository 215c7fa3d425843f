// Command distlock takes, watches and inspects distlock locks from the
// shell: it runs a command under a lock, with the lock's fencing token in
// its environment, and stops the command when the lock is lost.
//
// Install it with
//
//	go install github.com/distlock/distlock/cmd/distlock@latest
//
// Usage:
//
//	distlock run [flags] NAME -- COMMAND [ARGS...]   run COMMAND while holding the lock NAME
//	distlock hold [flags] NAME                       hold the lock NAME until interrupted
//	distlock watch [flags] NAME...                   print the locks' events until interrupted
//	distlock status [flags] NAME                     each master's view of the lock, and the verdict
//	distlock demo [flags]                            workers contending over local masters, one killed midway
//	distlock --version
//
// Every subcommand takes --help. The masters come from --nodes, a
// comma-separated list of redis://[user:pass@]host:port/db, rediss://...
// or host:port, or else from the DISTLOCK_NODES environment variable in
// the same form, or else the local node redis://127.0.0.1:6379/0. Use 3 or
// 5 independent masters; a lock needs a majority of them.
//
// # run
//
// run waits for the lock NAME (with --try it gives up at once when the
// lock is held; with --timeout it gives up when the time runs out), then
// runs COMMAND with stdin, stdout and stderr passed through, and with
// DISTLOCK_NAME (the lock's name) and DISTLOCK_TOKEN (the lease's fencing
// token, a decimal uint64) added to its environment. The lease renews
// itself while COMMAND runs. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
// distlock are passed on to COMMAND. When COMMAND exits, the processes it
// left running get SIGTERM (SIGKILL after --grace); once none is left,
// distlock releases the lock and exits with COMMAND's status.
//
// When the lease is lost (a majority of masters unreachable past the TTL),
// COMMAND and every process it started get SIGTERM, and SIGKILL after
// --grace; distlock then exits with status 122. Pass DISTLOCK_TOKEN to
// your storage, and have it refuse writes with a token lower than one it
// has seen: a stopped process cannot be stopped any faster than --grace,
// and a paused one not at all.
//
// COMMAND runs in a process group of its own. When distlock runs in the
// foreground of a terminal, COMMAND's group gets the terminal, as a shell
// gives it to a job: COMMAND can read it, and Ctrl-C and Ctrl-\ reach it
// directly. Ctrl-Z stops COMMAND and distlock together (the shell shows
// the job stopped); on fg, distlock continues COMMAND if the lease is still
// held, and otherwise kills it before it runs again and exits with 122. On
// Linux distlock is a child subreaper, so that it finds and ends processes
// that leave COMMAND's group, and the kernel kills COMMAND if distlock dies.
//
// # Exit status
//
//	0       run: COMMAND exited 0 holding the lock; status: free; watch: stopped by a signal or --timeout
//	1       status: held; demo: a check failed, or the masters could not be started
//	2       status: cannot tell (fewer than a majority of masters gave a reading, or they disagree)
//	122     run: the lease was lost; COMMAND was stopped, or exited after the loss
//	123     run, watch: the masters could not be reached, or refused
//	124     run: the lock was not acquired: held (--try), or --timeout ran out
//	125     usage: a bad flag, argument, TTL or node URL
//	126     run: COMMAND was found but could not be executed
//	127     run: COMMAND was not found
//	128+n   run: COMMAND was killed by signal n, or distlock got signal n before COMMAND
//	        started; demo: interrupted by signal n
//	other   run: COMMAND's own exit status, when it ran to its end holding the lock
//
// A COMMAND that itself exits with 122 to 127 cannot be told apart by
// status alone; distlock's own failures always print a message on stderr,
// starting with "distlock".
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/distlock/distlock"
)

// Exit statuses; see the package documentation.
const (
	exitOK          = 0
	exitHeld        = 1 // status: held
	exitDemoFailed  = 1
	exitUnknown     = 2 // status: cannot tell
	exitLost        = 122
	exitUnreachable = 123
	exitNotAcquired = 124
	exitUsage       = 125
	exitCannotExec  = 126
	exitNotFound    = 127
	exitSignal      = 128 // + the signal's number
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand.
type command struct {
	name     string
	synopsis string // after "distlock NAME "
	summary  string // one line, for the top-level usage
	about    string // the --help text between synopsis and flags
	run      func(c *command, args []string, stdout, stderr io.Writer) int
}

var commands []*command

func init() {
	commands = []*command{runCommand, holdCommand, watchCommand, statusCommand, demoCommand}
}

const topUsage = `distlock takes, watches and inspects locks held over several Redis masters.

Usage:
  distlock COMMAND [flags] [arguments]
  distlock --version

Commands:
%s
Run 'distlock COMMAND --help' for a command's flags and arguments.

Masters: --nodes URL,URL,... or DISTLOCK_NODES, else %s.
`

func printTopUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, topUsage, b.String(), distlock.DefaultNode)
}

// cli runs the command line args and returns the exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printTopUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if args[0] == "help" && len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				return c.run(c, []string{"--help"}, stdout, stderr)
			}
			fmt.Fprintf(stderr, "distlock help: unknown command %q\n", args[1])
			return exitUsage
		}
		printTopUsage(stdout)
		return exitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, version())
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "distlock: unknown command %q; want run, hold, watch, status or demo\nUsage: distlock COMMAND [flags] [arguments] (see distlock --help)\n", args[0])
		return exitUsage
	}
	return c.run(c, args[1:], stdout, stderr)
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// version returns the module version the binary was built from: a
// release tag when installed with go install ...@version, "(devel)" for
// a build from a working tree, with the VCS revision when known.
func version() string {
	v := "(unknown)"
	var rev, modified string
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = "+modified"
				}
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + modified
	}
	return fmt.Sprintf("distlock %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// untilSignal runs f with a context derived from ctx that a signal on sigs
// cancels (with the signal as its cause), and returns that signal, or nil
// when none came before f returned.
func untilSignal(ctx context.Context, sigs <-chan os.Signal, f func(ctx context.Context)) os.Signal {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var got os.Signal
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case got = <-sigs:
			cancel(fmt.Errorf("%v", got))
		case <-stop:
		}
	}()
	f(ctx)
	close(stop)
	<-watched
	return got
}
