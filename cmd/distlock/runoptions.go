package main

import (
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/distlock/distlock"
)

// runOptions is what the run (or hold) command line says.
type runOptions struct {
	cmd         string // "run" or "hold"
	name        string
	argv        []string // COMMAND and its arguments; none for hold
	path        string   // COMMAND, resolved
	ttl         time.Duration
	timeout     time.Duration // 0: wait as long as it takes
	deadline    time.Time     // when timeout runs out, counted from connect
	try         bool
	notAcquired int  // exit status when the lock is not acquired
	quiet       bool // no message when the lock is not acquired
	grace       time.Duration
	passNodes   bool     // give COMMAND the masters in DISTLOCK_NODES
	nodes       []string // the masters run uses (Config.Nodes)
	prefix      string   // the key prefix run uses (Config.KeyPrefix)
	owner       string   // Config.Owner; "" for the default, hostname:pid
	metadata    string   // WithMetadata
}

// lockFlags defines the flags that say how run and hold take the lock,
// with flock's names beside distlock's.
func (o *runOptions) lockFlags(f *flags) {
	f.durationVar(&o.ttl, "ttl", distlock.DefaultTTL, "lease TTL (a `duration` like 30s, or seconds): how long the lock outlives a crashed distlock; renewed every TTL/3")
	f.durationVar(&o.timeout, "timeout", 0, "give up waiting for the lock after this long, connecting included (a `duration` like 5m, or seconds; exit 124,\nor 123 when too few masters are reachable); 0: wait as long as it takes")
	f.durationVar(&o.timeout, "w", 0, "the same as --timeout, as flock -w (seconds, or a `duration`)")
	f.BoolVar(&o.try, "try", false, "give up at once when the lock is held (exit 124)")
	f.BoolVar(&o.try, "n", false, "the same as --try, as flock -n")
	f.IntVar(&o.notAcquired, "E", exitNotAcquired, "exit status when the lock is not acquired (held with --try, or --timeout ran out), as flock -E")
	f.BoolVar(&o.quiet, "quiet", false, "say nothing when the lock is not acquired (held with --try, or --timeout ran out)")
	f.StringVar(&o.owner, "owner", "", "who holds the lock, as status and watch show it (Config.Owner), at most 128 bytes;\ndefault hostname:pid of distlock. Public: no secrets")
	f.StringVar(&o.metadata, "metadata", "", "stored with the lease, as status and watch show it (WithMetadata): a job id, say;\nat most 512 bytes. Public: no secrets")
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
	if err := f.checkName(o.name); err != nil {
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
