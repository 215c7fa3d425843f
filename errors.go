package distlock

import (
	"errors"
	"fmt"
	"github.com/redis/rueidis"
	"strings"
)

// The errors distlock returns. Test for them with [errors.Is]: the errors
// returned carry more detail (a [*QuorumError], the context's error, the
// cause of a lost lease) and wrap these.
var (
	// ErrLocked means another lease holds the lock.
	ErrLocked = errors.New("distlock: locked by another holder")
	// ErrLeaseLost means the lease ended without Release: it could not be
	// renewed on a majority of masters before its validity ran out, or a
	// majority reported its keys gone or taken by another holder. Lease.Err
	// wraps it with the cause: which masters reported what, or, when the
	// validity ran out, each failing master's *NodeError (its last
	// renewal's error, or that none had answered yet:
	// TestLeaseExpiredErrorNamesMasters).
	ErrLeaseLost = errors.New("distlock: lease lost")
	// ErrReleased means the lease was released, by Release or Client.Close.
	ErrReleased = errors.New("distlock: lease released")
	// ErrNoQuorum means too few masters answered to make a majority.
	ErrNoQuorum = errors.New("distlock: no quorum of masters")
	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("distlock: client closed")
	// ErrNotifyConfig means a master refused CONFIG, so Watch could not
	// read or enable its keyspace notifications: set
	// notify-keyspace-events to include "Kgx" on it, and set
	// Config.SkipNotifyConfig. A Watch's error wraps it once per such
	// master.
	ErrNotifyConfig = errors.New("distlock: cannot enable keyspace notifications")
)

// QuorumError reports an operation that did not reach a majority of masters.
// It wraps [ErrLocked] when enough masters answered but some other holder
// kept the quorum out of reach, and [ErrNoQuorum] when too few answered.
type QuorumError struct {
	Op      string // "acquire", "release", "extend", "fence" or "watch"
	Name    string // the lock's name
	Granted int    // masters that did what was asked
	Held    int    // masters where another holder has the lock
	Needed  int    // the majority
	// Errs has one entry per master, in Config order: nil where the
	// master answered, or where its answer was not waited for (an acquire
	// decides as soon as a majority is won, or is out of reach and it is
	// known whether another holder or failing masters put it there; the
	// others' answers are cleaned up after). A Release or Extend whose context
	// ended first names each master it did not hear from
	// (TestQuorumErrorNamesSilentMasters).
	Errs []error
	// Expired is set when a majority granted, but too late: the lease's
	// validity had run out by the time the answers were in.
	Expired bool

	// unconfirmed: a Release whose caller's context ended before a
	// majority answered; its deletes went out all the same.
	unconfirmed bool
}

// Locked reports whether the quorum was missed because another holder has
// the lock, rather than because masters failed to answer.
//
// It does when other holders' keys alone put a majority out of reach (more
// than len(Errs)-Needed masters hold them: with 4 masters, 2 answers of
// another holder decide it before the others answer), or when the masters
// that granted and those held by another would together have made one.
func (e *QuorumError) Locked() bool {
	if e.Expired || e.Held == 0 {
		return false
	}
	return e.Granted+e.Held >= e.Needed || len(e.Errs) > 0 && e.Held > len(e.Errs)-e.Needed
}

func (e *QuorumError) Error() string {
	var b strings.Builder
	switch {
	case e.unconfirmed:
		fmt.Fprintf(&b, "distlock: %s %q: not confirmed: the caller's context ended when %s of the %d needed had answered; the deletes went out and go on in the background (a key they miss expires with its TTL)", e.Op, e.Name, nMasters(e.Granted), e.Needed)
	case e.Expired:
		fmt.Fprintf(&b, "distlock: %s %q: granted by %s (%d needed), but validity ran out before the answers came", e.Op, e.Name, nMasters(e.Granted), e.Needed)
	case e.Locked():
		fmt.Fprintf(&b, "distlock: %s %q: locked by another holder on %s (granted by %d; %d needed)", e.Op, e.Name, nMasters(e.Held), e.Granted, e.Needed)
	default:
		fmt.Fprintf(&b, "distlock: %s %q: no quorum: granted by %s; %d needed", e.Op, e.Name, nMasters(e.Granted), e.Needed)
	}
	var sep = ": "
	for i, err := range e.Errs {
		if err != nil {
			fmt.Fprintf(&b, "%smaster %d: %v", sep, i, err)
			sep = "; "
		}
	}
	return b.String()
}

// nMasters is "1 master" or "n masters".
func nMasters(n int) string {
	if n == 1 {
		return "1 master"
	}
	return fmt.Sprintf("%d masters", n)
}

// Unwrap returns [ErrLocked] or [ErrNoQuorum], then each master's error.
func (e *QuorumError) Unwrap() []error {
	errs := make([]error, 0, len(e.Errs)+1)
	if e.Locked() {
		errs = append(errs, ErrLocked)
	} else {
		errs = append(errs, ErrNoQuorum)
	}
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// localLocked is [ErrLocked] when the holder is this Client itself: one of
// its leases holds the name, or another of its calls has the turn on it
// (queue.go).
type localLocked struct{ op, name string }

func (e *localLocked) Error() string {
	return fmt.Sprintf("distlock: %s %q: locked by a lease or a call of this Client", e.op, e.name)
}

func (e *localLocked) Unwrap() error { return ErrLocked }

// errNoAnswerYet is a master's error in a *QuorumError returned because
// the caller's context ended before that master answered.
var errNoAnswerYet = errors.New("no answer before the caller's context ended")

// silentErrs sets errs[i] to errNoAnswerYet for every master i that is not
// in heard and has no error yet: the *QuorumError of a call whose context
// ended names every master it did not hear from.
func (c *Client) silentErrs(errs []error, heard uint64) {
	for i, n := range c.nodes {
		if heard&(1<<i) == 0 && errs[i] == nil {
			errs[i] = &NodeError{Addr: n.addr, Err: errNoAnswerYet}
		}
	}
}

// DialError is [New]'s error when no master answered its first dial (within
// Config.DialTimeout). It wraps [ErrNoQuorum] and each master's error.
type DialError struct {
	Errs []*NodeError // one per master, in Config order
}

func (e *DialError) Error() string {
	var b strings.Builder
	b.WriteString(ErrNoQuorum.Error())
	// A master that answered with an error (a wrong password, an ACL)
	// was reached; it refused the connection.
	what := ": no master reachable"
	for _, ne := range e.Errs {
		var re *rueidis.RedisError
		if errors.As(ne.Err, &re) {
			what = ": no master accepted the connection"
			break
		}
	}
	b.WriteString(what)
	for i, ne := range e.Errs {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%smaster %d (%s): %v", sep, i, ne.Addr, ne.Err)
	}
	return b.String()
}

// Unwrap returns [ErrNoQuorum], then each master's error.
func (e *DialError) Unwrap() []error {
	errs := []error{ErrNoQuorum}
	for _, ne := range e.Errs {
		errs = append(errs, ne)
	}
	return errs
}

// NodeError is one master's failure inside a [QuorumError]. A master that
// did not answer within the per-master timeout (Config.NodeTimeout) fails
// with "no answer within …", which does not match context.DeadlineExceeded:
// that error means the caller's own context ended.
type NodeError struct {
	Addr string // the master, as Config named it (credentials removed)
	Err  error
}

func (e *NodeError) Error() string { return e.Addr + ": " + e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// withCtx joins err with ctx's error when ctx has ended, so that both
// errors.Is(err, context.DeadlineExceeded) and errors.Is(err, ErrLocked)
// hold for an Acquire that timed out waiting.
func withCtx(err error, ctxErr error) error {
	if ctxErr == nil {
		return err
	}
	if err == nil {
		return ctxErr
	}
	return errors.Join(err, ctxErr)
}
