package distlock

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distlock/distlock/internal/keyslot"
)

// An Option changes one Acquire, TryAcquire or Do call.
type Option func(*acquireOptions)

type acquireOptions struct {
	ttl time.Duration
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

// request is one lock name's keys and the lease settings of one call.
type request struct {
	name     string
	key      string // the lock key: prefix + name
	fenceKey string // the fence counter of the lock key's hash slot
	waitKey  string // master 0's waiting list, by arrival (same slot)
	lapseKey string // the waiting list by lapse time (same slot)
	ttl      time.Duration
	timeout  time.Duration // per master
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

// reservedPrefixes start distlock's own keys after the key prefix.
var reservedPrefixes = []string{"fence:", "wait:", "lapse:"}

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
	// Redis counts PX in whole milliseconds; round down so that our
	// arithmetic never assumes a key lives longer than it does.
	ttl := o.ttl.Truncate(time.Millisecond)
	key := c.cfg.prefix + name
	tag := "{" + keyslot.Tag(keyslot.Slot(key)) + "}"
	return &request{
		name:     name,
		key:      key,
		fenceKey: c.cfg.prefix + "fence:" + tag,
		waitKey:  c.cfg.prefix + "wait:" + tag + name,
		lapseKey: c.cfg.prefix + "lapse:" + tag + name,
		ttl:      ttl,
		timeout:  c.nodeTimeout(ttl),
	}, nil
}
