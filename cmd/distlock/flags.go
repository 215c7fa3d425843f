package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/distlock/distlock"
)

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
	prefix := distlock.DefaultKeyPrefix
	if p := os.Getenv("DISTLOCK_PREFIX"); p != "" {
		prefix = p
	}
	f.StringVar(&f.prefix, "prefix", prefix, "key prefix of the locks (Config.KeyPrefix; default $DISTLOCK_PREFIX, else "+distlock.DefaultKeyPrefix+")")
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

// fail reports err on stderr (without the library's prefix: see errText)
// and returns its exit status: exitUsage for a usage error, with a pointer
// to --help.
func (f *flags) fail(stderr io.Writer, err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "distlock %s: %s\nUsage: distlock %s %s (see distlock %s --help)\n", f.cmd.name, errText(err), f.cmd.name, f.cmd.synopsis, f.cmd.name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "distlock %s: %s\n", f.cmd.name, errText(err))
	return exitUnreachable
}

// checkName reports what is wrong with a lock name, as the library would
// refuse it, before any master is contacted: the name itself, the key
// prefix, or the lock key they make, which must not fall in distlock's
// own key spaces (distlock.ReservedKeyspace).
func (f *flags) checkName(name string) error {
	if name == "" {
		return usagef("empty lock NAME")
	}
	if err := distlock.CheckName(name); err != nil {
		return usagef("%v", err)
	}
	if err := distlock.CheckKeyPrefix(f.prefix); err != nil {
		return usagef("%v (key prefix from %s)", err, f.prefixFrom())
	}
	if distlock.CheckKey(f.prefix, name) != nil { // the name and the prefix are good: the key
		return usagef("lock key %q (key prefix %q from %s, then NAME %q) is in a key space reserved for distlock's own keys", f.prefix+name, f.prefix, f.prefixFrom(), name)
	}
	return nil
}

// prefixFrom says where the key prefix came from.
func (f *flags) prefixFrom() string {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == "prefix" })
	switch {
	case set:
		return "--prefix"
	case os.Getenv("DISTLOCK_PREFIX") != "":
		return "$DISTLOCK_PREFIX"
	}
	return "the default"
}

// durationValue is a duration flag that also takes a bare number of
// seconds ("10", "2.5"), as flock -w does.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	nonzero := strings.ContainsAny(s, "123456789") // a duration's digits
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs*float64(time.Second)) >= math.MaxInt64 {
			return errors.New("want a duration like 10s, 1m30s or 500ms, or a number of seconds")
		}
		v, nonzero = time.Duration(secs*float64(time.Second)), secs != 0
	}
	if v == 0 && nonzero {
		// Under a nanosecond, but not 0 (for --timeout: wait as long as
		// it takes): the least there is (TestOp2TinyTimeoutWaitsForever).
		v = time.Nanosecond
		if strings.HasPrefix(s, "-") {
			v = -v
		}
	}
	*d = durationValue(v)
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

// extraArgs is the usage error for arguments after a command's lock NAME
// (rest, NAME first): a flag among them is named as one that goes before
// NAME; either way each is shown as shownArg shows it, so that a password
// in a flag's value or a node URL given without its flag is not printed
// (TestUseExtraArgsHidePassword). lead says what the command takes, hint
// follows the list.
func extraArgs(rest []string, lead, hint string) error {
	shown := make([]string, len(rest))
	for i, a := range rest {
		shown[i] = shownArg(a)
	}
	for _, a := range rest[1:] {
		if strings.HasPrefix(a, "-") && a != "--" { // "--": a command to run (hint)
			return usagef("%q after the lock NAME: flags go before it (got %q)", shownArg(a), shown)
		}
	}
	return usagef("%s; got %q%s", lead, shown, hint)
}

// shownArg is a command-line argument as a usage error may show it: a
// flag without its value (--nodes=URL), anything else with a password it
// may hold hidden (distlock.RedactNode).
func shownArg(a string) string {
	if strings.HasPrefix(a, "-") {
		if name, _, found := strings.Cut(a, "="); found {
			return name + "=…"
		}
		return a
	}
	return distlock.RedactNode(a)
}
