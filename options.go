package distlock

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/keyslot"
)

// An Option changes one Acquire, TryAcquire or Do call.
type Option func(*acquireOptions)

type acquireOptions struct {
	ttl      time.Duration
	metadata string
}

// WithTTL sets the lease's TTL: how long its keys live on the masters
// without renewal. The lease renews itself about every TTL/3 while held, so
// the TTL bounds how long the lock stays taken after its holder dies, not
// how long it may be held. It must be at least a millisecond (Redis's
// expiry precision), larger than its drift margin, and more than twice
// Config.NodeTimeout when that is set.
func WithTTL(d time.Duration) Option {
	return func(o *acquireOptions) { o.ttl = d }
}

// WithMetadata stores metadata with the lease, beside its Client's
// Config.Owner, for whoever inspects the lock: Status, Watch events,
// Lease.Metadata and the command line show it (a job id, a request's
// origin). It may be any string of at most MaxMetadataLen (512) bytes; a
// longer one fails Acquire, TryAcquire or Do at once, before anything is
// sent. It is bounded because it is stored in the lock key's value, which
// every renewal sends to every master (every third of a TTL). It is
// public: anyone who can read the lock keys, or subscribe to their
// channels, reads it; never put a secret in it.
//
// A lease handed to another goroutine of the same Client (see
// Client.Acquire) carries that goroutine's own metadata: a handoff gives
// the keys the metadata the waiting goroutines asked for, and one that
// asked for other metadata than the handoff wrote takes the lock anew
// (one more round trip).
func WithMetadata(metadata string) Option {
	return func(o *acquireOptions) { o.metadata = metadata }
}

// request is one lock name's keys and the lease settings of one call.
type request struct {
	name     string
	key      string // the lock key: prefix + name
	fenceKey string // the fence counter of the lock key's hash slot
	waitKey  string // each master's waiting list, by arrival (same slot)
	lapseKey string // the waiting list by lapse time (same slot)
	leftKey  string // waiters that have finished, for a while (same slot)
	// legacyFenceKey is where distlock before 0.9 kept the counter for a
	// custom key prefix ("" for the default prefix, whose counter has not
	// moved): a counter new on a master starts above it (acquire.lua).
	legacyFenceKey string
	tag            string // "{...}", the lock key's hash slot
	ttl            time.Duration
	timeout        time.Duration // per master
	metadata       string        // WithMetadata's
	suffix         string        // of the lease values: owner and metadata (owner.go)
}

// CheckName reports why name cannot be a lock name, or nil. Every call
// that takes a name checks it the same way; CheckName lets a program
// (such as a command line) refuse a bad name before it connects.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("empty lock name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("lock name of %d bytes is longer than MaxNameLen (%d)", len(name), MaxNameLen)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("lock name %q: names starting with %q are reserved for distlock's own keys", name, p)
		}
	}
	return nil
}

// CheckKey reports why the key prefix prefix (Config.KeyPrefix; ""
// means DefaultKeyPrefix) and the lock name name cannot make a lock key,
// or nil: the prefix as New checks it, the name as CheckName does, and
// the key they make, which must not fall in distlock's own key spaces,
// as every call that takes a name checks it.
func CheckKey(prefix, name string) error {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	if err := CheckKeyPrefix(prefix); err != nil {
		return err
	}
	if err := CheckName(name); err != nil {
		return err
	}
	return checkKey(prefix + name)
}

// reservedPrefixes start distlock's own keys after the key prefix.
var reservedPrefixes = []string{"fence:", "wait:", "lapse:"}

// ReservedKeyspace starts every key distlock keeps beside the lock keys,
// whatever Config.KeyPrefix is: fence counters (ReservedKeyspace+"fence:"),
// and waiting lists ("wait:", "lapse:"). They are derived from the full
// lock key, never from the prefix alone, so that a lock key has one fence
// counter whichever prefix and name spell it ("a:"+"b:x" and "a:b:"+"x"
// both lock a:b:x, with one counter: TestPrefixesShareCounter). No lock key
// may start with these reserved key spaces.
const ReservedKeyspace = "distlock:"

// tombKey returns the key of the tombstone that release.lua leaves (a
// bury) for a value whose acquire was never answered: that acquire is
// refused if it arrives later.
func (r *request) tombKey(value string) string {
	// Named by the value's random part alone: it tells the value apart,
	// and the owner and metadata would only lengthen the key.
	return ReservedKeyspace + "fence:dead:" + r.tag + random(value)
}

// newValue returns a fresh value for a lease of r: 128 random bits, then
// the owner and metadata (owner.go).
func (r *request) newValue() string {
	return newValue(r.suffix)
}

// releaseCall returns release.lua's call that deletes the key where it
// holds value (or also, when not ""), and raises the fence counter to
// counter (the lease's; 0 for a value that never was a lease's), and with
// bury also leaves value's tombstone, for max(2·ttl, 1 min) (tombLife): on
// a master whose answer to value's acquire never came.
func (r *request) releaseCall(value, also string, counter int64, bury bool, ttl time.Duration) rueidis.LuaExec {
	// Keys and args share one backing array (rueidis copies them into
	// the command).
	if !bury {
		s := []string{r.key, r.fenceKey, value, also, strconv.FormatInt(counter, 10)}
		return rueidis.LuaExec{Keys: s[:2:2], Args: s[2:]}
	}
	s := []string{r.key, r.fenceKey, r.tombKey(value), value, also, strconv.FormatInt(counter, 10), strconv.FormatInt(tombLife(ttl).Milliseconds(), 10)}
	return rueidis.LuaExec{Keys: s[:3:3], Args: s[3:]}
}

// checkKey reports why key cannot be a lock key, or nil: it must not be
// one of distlock's own keys.
func checkKey(key string) error {
	if p := reservedPrefix(key); p != "" {
		return fmt.Errorf("lock key %q starts with %q, which is reserved for distlock's own keys", key, p)
	}
	return nil
}

// reservedKey reports whether key is one of distlock's own keys (a fence
// counter, a tombstone, a waiting list), which no lock key can be.
func reservedKey(key string) bool { return reservedPrefix(key) != "" }

// reservedPrefix returns the reserved prefix key starts with, or "".
func reservedPrefix(key string) string {
	rest, ok := strings.CutPrefix(key, ReservedKeyspace)
	if !ok {
		return ""
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(rest, p) {
			return ReservedKeyspace + p
		}
	}
	return ""
}

// newRequest checks name and opts and resolves the keys.
func (c *Client) newRequest(op, name string, opts []Option) (*request, error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("distlock: %s: %w", op, err)
	}
	o := acquireOptions{ttl: c.cfg.ttl}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := checkTTL(o.ttl, c.cfg.driftFactor, c.cfg.nodeTimeout); err != nil {
		return nil, fmt.Errorf("distlock: %s %q: %w", op, name, err)
	}
	if err := checkMetadata(o.metadata); err != nil {
		return nil, fmt.Errorf("distlock: %s %q: %w", op, name, err)
	}
	// Redis counts PX in whole milliseconds; round down so that our
	// arithmetic never assumes a key lives longer than it does.
	ttl := o.ttl.Truncate(time.Millisecond)
	// The lock key and every key beside it are laid end to end in one
	// string, each a slice of it: one allocation for them all, as they
	// live as long as r. (A hash tag is at most 4 characters: keyslot's
	// tags count in base 36 up to the 16384th slot; a longer one would
	// only cost the builder a reallocation, never change a key.)
	var b keyParts
	legacy := c.cfg.prefix != ReservedKeyspace
	kl, n := len(c.cfg.prefix)+len(name), 4+2
	size := kl + n + 4*len(ReservedKeyspace) + len("fence:wait:lapse:fence:left:") + 4*n + 3*kl
	if legacy {
		size += len(c.cfg.prefix) + len("fence:") + n
	}
	b.b.Grow(size)
	keyAt := b.add(c.cfg.prefix, name)
	key := b.b.String()[keyAt[0]:keyAt[1]] // prefix + name
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("distlock: %s: %w", op, err)
	}
	// Every key of the lock in the lock key's hash slot (one script can
	// touch them all, even on a Redis Cluster), and named from the lock
	// key alone: one counter per slot of lock keys, however the key was
	// split into prefix and name.
	t := keyslot.Tag(keyslot.Slot(key))
	tag := b.add("{", t, "}")
	fence := b.add(ReservedKeyspace, "fence:", "{", t, "}")
	wait := b.add(ReservedKeyspace, "wait:", "{", t, "}", key)
	lapse := b.add(ReservedKeyspace, "lapse:", "{", t, "}", key)
	left := b.add(ReservedKeyspace, "fence:left:", "{", t, "}", key) // beside the tombstones (fence:dead:)
	var legacyFence [2]int
	if legacy {
		legacyFence = b.add(c.cfg.prefix, "fence:", "{", t, "}")
	}
	all := b.b.String()
	part := func(p [2]int) string { return all[p[0]:p[1]] }
	r := &request{
		name:     name,
		key:      key,
		fenceKey: part(fence),
		waitKey:  part(wait),
		lapseKey: part(lapse),
		leftKey:  part(left),
		ttl:      ttl,
		timeout:  c.nodeTimeout(ttl),
		tag:      part(tag),
		metadata: o.metadata,
		suffix:   c.cfg.ownerSuffix,
	}
	if o.metadata != "" {
		r.suffix = valueSuffix(c.cfg.owner, o.metadata)
	}
	if legacy {
		r.legacyFenceKey = part(legacyFence)
	}
	return r, nil
}

// keyParts lays strings end to end in one buffer (newRequest).
type keyParts struct{ b strings.Builder }

// add appends ss and returns where they start and end in the buffer.
func (k *keyParts) add(ss ...string) [2]int {
	start := k.b.Len()
	for _, s := range ss {
		k.b.WriteString(s)
	}
	return [2]int{start, k.b.Len()}
}
