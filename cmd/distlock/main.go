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
//	2       status: cannot tell (fewer than a majority of masters answered, or they disagree)
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
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

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

// usageError is a bad command line: it is reported with a pointer to
// --help and exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flags is a subcommand's flag set with the flags several share.
type flags struct {
	*flag.FlagSet
	cmd       *command
	nodes     string
	nodesFile string
	prefix    string
	from      string // where config found the masters; "" for the default
}

// newFlags returns the flag set of c, with --nodes and --prefix unless
// c is the demo, which starts its own masters.
func newFlags(c *command) *flags {
	return newFlagSet(c, c.name != "demo")
}

func newFlagSet(c *command, masters bool) *flags {
	f := &flags{FlagSet: flag.NewFlagSet("distlock "+c.name, flag.ContinueOnError), cmd: c, prefix: distlock.DefaultKeyPrefix}
	f.SetOutput(io.Discard) // parse errors are reported by parse
	if !masters {
		return f
	}
	f.StringVar(&f.nodes, "nodes", "", "comma-separated masters: redis://[user:pass@]host:port/db, rediss://... or host:port\n(default: --nodes-file, else $DISTLOCK_NODES or the file $DISTLOCK_NODES_FILE names, else "+distlock.DefaultNode+")")
	f.StringVar(&f.nodesFile, "nodes-file", "", "read the masters from this file: separated by commas or lines, # starts a comment;\nkeeps passwords out of the command line, which every user can read")
	f.StringVar(&f.prefix, "prefix", distlock.DefaultKeyPrefix, "key prefix of the locks (Config.KeyPrefix)")
	return f
}

// parse parses args. It returns done with the exit status when the
// command is over: --help was asked for (help printed, status 0) or the
// flags were bad (error printed, status exitUsage).
func (f *flags) parse(args []string, stdout, stderr io.Writer) (status int, done bool) {
	err := f.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		f.printHelp(stdout)
		return exitOK, true
	}
	if err != nil {
		return f.fail(stderr, &usageError{msg: err.Error()}), true
	}
	return 0, false
}

func (f *flags) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: distlock %s %s\n\n%s\n\nFlags:\n", f.cmd.name, f.cmd.synopsis, strings.TrimSpace(f.cmd.about))
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// fail reports err on stderr and returns its exit status: exitUsage for
// a usage error, with a pointer to --help.
func (f *flags) fail(stderr io.Writer, err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "distlock %s: %v\nUsage: distlock %s %s (see distlock %s --help)\n", f.cmd.name, err, f.cmd.name, f.cmd.synopsis, f.cmd.name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "distlock %s: %v\n", f.cmd.name, err)
	return exitUnreachable
}

// config returns the Client configuration the flags and the environment
// say. The masters come from the first of --nodes, --nodes-file and
// DISTLOCK_NODES or DISTLOCK_NODES_FILE (not both) that is set, else the
// default.
func (f *flags) config() (distlock.Config, error) {
	list, from := f.nodes, "--nodes"
	var err error
	switch {
	case list != "":
	case f.nodesFile != "":
		from = "--nodes-file " + f.nodesFile
		list, err = readNodesFile(f.nodesFile)
	case os.Getenv("DISTLOCK_NODES") != "" && os.Getenv("DISTLOCK_NODES_FILE") != "":
		return distlock.Config{}, usagef("DISTLOCK_NODES and DISTLOCK_NODES_FILE are both set; set one")
	case os.Getenv("DISTLOCK_NODES") != "":
		list, from = os.Getenv("DISTLOCK_NODES"), "DISTLOCK_NODES"
	case os.Getenv("DISTLOCK_NODES_FILE") != "":
		from = "DISTLOCK_NODES_FILE " + os.Getenv("DISTLOCK_NODES_FILE")
		list, err = readNodesFile(os.Getenv("DISTLOCK_NODES_FILE"))
	default:
		from = ""
	}
	if err != nil {
		return distlock.Config{}, usagef("%s: %v", from, err)
	}
	f.from = from
	var nodes []string
	if strings.TrimSpace(list) != "" {
		for i, n := range strings.Split(list, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				return distlock.Config{}, usagef("%s: entry %d of %q is empty", from, i+1, redactList(list))
			}
			nodes = append(nodes, n)
		}
	}
	if err := distinctServers(nodes); err != nil {
		return distlock.Config{}, usagef("%s: %v", from, err)
	}
	if f.prefix == "" {
		return distlock.Config{}, usagef("--prefix must not be empty")
	}
	return distlock.Config{Nodes: nodes, KeyPrefix: f.prefix}, nil
}

// readNodesFile returns the masters listed in the file at path, one per
// line or separated by commas, joined by commas. Blank lines and text
// from a # on are skipped.
func readNodesFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var nodes []string
	for _, line := range strings.Split(string(data), "\n") {
		// A comment starts with '#' at the start of a line or after a
		// blank: a '#' inside a URL (a password) is not one, and is
		// refused whole with the rest of the entry, its password hidden
		// (TestUsePasswordNeverPrinted).
		for i := range len(line) {
			if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
				line = line[:i]
				break
			}
		}
		for _, n := range strings.Split(line, ",") {
			if n = strings.TrimSpace(n); n != "" {
				nodes = append(nodes, n)
			}
		}
	}
	if len(nodes) == 0 {
		return "", errors.New("no masters in the file")
	}
	return strings.Join(nodes, ","), nil
}

// redactList returns a list of masters with the passwords in it hidden.
// The library's distlock.RedactNode reads the text, so it hides the
// password of an entry that does not parse too.
func redactList(list string) string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		out = append(out, distlock.RedactNode(strings.TrimSpace(n)))
	}
	return strings.Join(out, ",")
}

// distinctServers reports two entries of nodes that name one server
// (host and port; "localhost", 127.0.0.1 and ::1 are one host): a lock
// counted twice on one server would need one master less than a
// majority of the servers.
func distinctServers(nodes []string) error {
	seen := map[string]int{}
	for i, n := range nodes {
		key, ok := serverKey(n)
		if !ok {
			continue // New says what is wrong with it
		}
		if j, dup := seen[key]; dup {
			return fmt.Errorf("masters %d and %d (%s, %s) are the same server; a lock needs a majority of independent masters", j+1, i+1, redactList(nodes[j]), redactList(n))
		}
		seen[key] = i
	}
	return nil
}

// serverKey returns host:port of a master's URL or host:port, with the
// host in one spelling: loopback names and addresses as "loopback", IP
// addresses in their canonical form, names in lower case.
func serverKey(node string) (string, bool) {
	hostport := node
	if strings.Contains(node, "://") {
		u, err := url.Parse(node)
		if err != nil {
			return "", false
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), "6379"
	}
	if port == "" {
		port = "6379"
	}
	host = strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
		if ip.IsLoopback() {
			host = "loopback"
		}
	} else if host == "localhost" {
		host = "loopback"
	}
	return net.JoinHostPort(host, port), true
}

// connect returns a Client for cfg. Configuration errors (a bad node URL,
// a bad TTL) are usage errors; masters that cannot be reached are not.
func (f *flags) connect(cfg distlock.Config) (*distlock.Client, error) {
	c, err := distlock.New(cfg)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, distlock.ErrNoQuorum) {
		return nil, err
	}
	if f.from == "" {
		return nil, usagef("%v", err)
	}
	return nil, usagef("%v (masters from %s)", err, f.from)
}

// checkName reports what is wrong with a lock name, as the library would
// refuse it, before any master is contacted.
func checkName(name string) error {
	if name == "" {
		return usagef("empty lock NAME")
	}
	if err := distlock.CheckName(name); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// durationValue is a duration flag that also takes a bare number of
// seconds ("10", "2.5"), as flock -w does.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	if v, err := time.ParseDuration(s); err == nil {
		*d = durationValue(v)
		return nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
		return errors.New("want a duration like 10s, 1m30s or 500ms, or a number of seconds")
	}
	*d = durationValue(secs * float64(time.Second))
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

// durationVar defines a duration flag that also takes seconds. Its usage
// names the value `duration`.
func (f *flags) durationVar(p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var((*durationValue)(p), name, usage)
}

// positive checks a duration flag that must be more than zero.
func positive(name string, d time.Duration) error {
	if d <= 0 {
		return usagef("--%s %v: must be more than 0", name, d)
	}
	return nil
}

// notNegative checks a duration flag where 0 means none.
func notNegative(name string, d time.Duration) error {
	if d < 0 {
		return usagef("--%s %v: must not be negative", name, d)
	}
	return nil
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
