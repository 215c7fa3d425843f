package distlock

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Inspecting a lock.
//
// Status reads, on every master at once, the lock key's value and
// remaining TTL and the fence counter of the key's hash slot, each master's
// three reads in one MULTI/EXEC so that they describe one instant on that
// master. It writes nothing, and it is no part of the locking protocol: the
// answer is a snapshot, true when the masters answered and possibly stale
// by the time the caller reads it.

// LockState is a lock's state as a majority of masters reports it.
type LockState int

const (
	// StateUnknown: no majority of masters agrees on one state. Too few
	// masters answered, or those that did disagree (some hold one value,
	// others another or none), as while an acquire or a release is under
	// way, or after a holder lost some of its keys.
	StateUnknown LockState = iota
	// StateFree: a majority of masters has no lock key. An acquire now
	// could win.
	StateFree
	// StateHeld: a majority of masters holds the same lease's value.
	StateHeld
)

func (s LockState) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case StateFree:
		return "free"
	case StateHeld:
		return "held"
	}
	return "LockState(" + strconv.Itoa(int(s)) + ")"
}

// Status is a snapshot of one lock on every master, as [Client.Status]
// read it.
type Status struct {
	Name  string
	State LockState
	// Agree is how many masters agree with State: hold the holder's
	// value (StateHeld) or no lock key (StateFree). For StateUnknown it
	// is the size of the largest group that agrees on anything.
	Agree int
	// Quorum is how many masters make a majority.
	Quorum int
	// TTL, for StateHeld, is how long a majority keeps the holder's keys
	// unless the holder renews them: the Quorum-th longest remaining TTL
	// among the masters that hold its value, a key without expiry counting
	// as the longest. It is negative when that key has no expiry (a
	// majority keeps the value for ever: distlock never writes such a
	// key), and 0 when the lock is not held.
	TTL time.Duration
	// Owner and Metadata, for StateHeld, say who holds the lock: the
	// holder's Config.Owner (by default "hostname:pid") and the metadata
	// its Acquire gave (WithMetadata), as stored with its value. Both are
	// "" when the lock is not held, and for a value that is not a distlock
	// lease's (another program's) or comes from a distlock that stored no
	// owner. The holder's fencing token is not among them: it is drawn
	// after the value is stored, per master (the Fence counters bound it).
	Owner    string
	Metadata string
	// Masters has one entry per master, in Config order.
	Masters []MasterStatus
}

// MasterStatus is what one master said about a lock.
type MasterStatus struct {
	// Addr names the master as Config did, without credentials.
	Addr string
	// Err says why the master could not be read (unreachable, no answer
	// in time, an error reply such as NOPERM); the fields below but
	// LastError and LastErrorAt are then zero.
	Err error
	// Held reports whether the master has the lock key.
	Held bool
	// Value is the lock key's value as stored, "" when free: the random
	// value of the lease that holds the key on this master (32 hex
	// digits), then '|' and the lease's owner and metadata, escaped (see
	// Owner and Metadata, which give them as they were set). Masters that
	// hold the same lease have the same value. A value written by another
	// program is given as it is.
	Value string
	// Owner and Metadata are the owner and metadata of the lease that
	// holds the key on this master (see Status.Owner), read from Value; ""
	// when free, and for a value that is not a distlock lease's.
	Owner    string
	Metadata string
	// TTL is the lock key's remaining time to live when Held: the holder
	// keeps the key on this master that long unless it renews. It is
	// negative for a key without expiry, which distlock never writes.
	TTL time.Duration
	// LastError is the last error reply this master gave to any command
	// of the Client, and LastErrorAt when: a command its ACL refuses
	// (NOPERM, naming the command), OOM, READONLY, a script's error. Nil
	// when it has given none since the Client was created. It is history,
	// not this read's outcome (Err is that): a master whose ACL refuses
	// the acquire script but allows these reads answers Status without
	// Err, while it counts for no acquire's majority; LastError shows it.
	// A master put right keeps its last error, with its time, until it
	// gives another. Never set from a master that did not answer.
	LastError   error
	LastErrorAt time.Time
	// Fence is the master's fence counter for the lock's hash slot (0
	// before the first lease in that slot), shared by every lock name in
	// the slot. A lease's token is its counter shifted left by 6 bits,
	// with the master's index in the low bits (see [Lease.Token]); every
	// later lease gets a larger one.
	Fence int64
	// FenceErr says why the fence counter could not be read (another
	// program left a value that is not a number, or a key of another type
	// there), or a *CounterError when it is a number outside 1..MaxCounter
	// other than 0 (a counter set to 0 draws 1 next);
	// Fence is then 0. The lock key's reading stands: the lock's
	// verdict does not depend on the counter.
	FenceErr error
}

// Status reads the lock name's state on every master at once and returns
// it with the verdict of the majority. It writes nothing and takes no
// part in locking: the result is a snapshot, which may be out of date as
// soon as it is returned. Use it to inspect a lock, never to decide
// whether to take one (Acquire and TryAcquire do that safely).
//
// Status waits for every master's answer, each for at most
// Config.DialTimeout, or until ctx ends. Masters that cannot be read are
// reported in their [MasterStatus] entries, not as an error; when too few
// answered to form a majority, State is StateUnknown. Status returns an
// error only for an invalid name, a closed Client ([ErrClosed]), or a ctx
// that ended before the answers came (the error then matches ctx.Err()).
// It is safe for concurrent use.
func (c *Client) Status(ctx context.Context, name string) (Status, error) {
	req, err := c.newRequest("status", name, nil)
	if err != nil {
		return Status{}, err
	}
	if err := c.enter(); err != nil {
		return Status{}, err
	}
	defer c.exit()

	replies, count := c.fanout(ctx, c.cfg.dialTimeout, nil, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		// One transaction per master: the three reads see one instant.
		res := rc.DoMulti(ctx,
			rc.B().Multi().Build(),
			rc.B().Get().Key(req.key).Build(),
			rc.B().Pttl().Key(req.key).Build(),
			rc.B().Get().Key(req.fenceKey).Build(),
			rc.B().Exec().Build())
		for _, r := range res[:len(res)-1] {
			// A refused MULTI or read (NOPERM) says why; EXEC would only
			// say EXECABORT.
			if isRedisError(r.Error()) {
				return r
			}
		}
		return res[len(res)-1]
	})
	st := Status{Name: name, Quorum: c.quorum, Masters: make([]MasterStatus, len(c.nodes))}
	for i, n := range c.nodes {
		st.Masters[i].Addr = n.addr
	}
	for range count {
		r := <-replies
		m := &st.Masters[r.node]
		if r.err == nil {
			r.err = parseStatus(r.res, m, req.fenceKey)
			if r.err != nil {
				r.err = &NodeError{Addr: m.Addr, Err: r.err}
			}
		}
		if r.err != nil {
			*m = MasterStatus{Addr: m.Addr, Err: r.err}
		}
	}
	if err := ctx.Err(); err != nil {
		return Status{}, fmt.Errorf("distlock: status %q: %w", name, err)
	}
	for i, n := range c.nodes {
		st.Masters[i].LastErrorAt, st.Masters[i].LastError = n.lastFault()
	}
	st.verdict()
	return st, nil
}

// parseStatus fills m from one master's EXEC reply: the lock key's value,
// its PTTL, and the fence counter.
func parseStatus(res rueidis.RedisResult, m *MasterStatus, fenceKey string) error {
	arr, err := res.ToArray()
	if err != nil {
		return err
	}
	if len(arr) != 3 {
		return fmt.Errorf("unexpected reply to status read: %d elements, want 3", len(arr))
	}
	value, err := arr[0].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return fmt.Errorf("lock key: %w", err)
	}
	exists := err == nil // a key set to "" by another program is held too (TestUseStatusEmptyValueNotFree)
	pttl, err := arr[1].AsInt64()
	if err != nil {
		return fmt.Errorf("lock key PTTL: %w", err)
	}
	fence, err := arr[2].AsInt64()
	switch {
	case err != nil && !rueidis.IsRedisNil(err):
		if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
			// Not a number: another program's string, of any size and not
			// ours to print (TestStatusFenceNotANumber).
			s, _ := arr[2].ToString()
			err = fmt.Errorf("not an integer (a string of %d bytes)", len(s))
		}
		fence, m.FenceErr = 0, fmt.Errorf("fence counter: %w", err)
	case err == nil && fence != 0: // 0: set by hand, the next INCR gives 1
		// Set by hand or by another program out of range: shifted into a
		// token it would wrap around and read as a small one.
		if cerr := checkCounter(fence, fenceKey); cerr != nil {
			fence, m.FenceErr = 0, cerr
		}
	}
	m.Held, m.Value, m.Fence = exists, value, fence
	m.Owner, m.Metadata, _ = parseValue(value)
	switch {
	case !m.Held:
	case pttl >= 0:
		m.TTL = time.Duration(pttl) * time.Millisecond
	default: // -1: no expiry (PTTL answers -2 only for a missing key)
		m.TTL = -1
	}
	return nil
}

// verdict sets State, Agree and TTL from the masters' entries.
//
// It does not count through a quorum.Tally: the answers are not grants
// and refusals of one request, but groups of masters that agree on a
// value (or on none), and a group is the verdict when it alone makes a
// majority.
func (s *Status) verdict() {
	free := 0
	ttls := make(map[string][]time.Duration) // per value held
	for _, m := range s.Masters {
		switch {
		case m.Err != nil:
		case m.Held:
			ttls[m.Value] = append(ttls[m.Value], m.TTL)
		default:
			free++
		}
	}
	s.State, s.Agree, s.TTL = StateUnknown, free, 0
	if free >= s.Quorum {
		s.State = StateFree
		return
	}
	for v, t := range ttls {
		if len(t) > s.Agree {
			s.Agree = len(t)
		}
		if len(t) >= s.Quorum {
			// The lock stays held until fewer than a majority keep the
			// key: until the Quorum-th longest TTL runs out, a key
			// without expiry (a negative TTL) never.
			slices.SortFunc(t, func(a, b time.Duration) int { return cmp.Compare(lifetime(a), lifetime(b)) })
			s.State, s.Agree, s.TTL = StateHeld, len(t), t[len(t)-s.Quorum]
			s.Owner, s.Metadata, _ = parseValue(v)
			return
		}
	}
}

// lifetime is a master's key TTL as a duration to compare: a key without
// expiry (a negative TTL) lives longest.
func lifetime(ttl time.Duration) time.Duration {
	if ttl < 0 {
		return math.MaxInt64
	}
	return ttl
}
