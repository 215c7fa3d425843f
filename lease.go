package distlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// A Lease is one holding of a lock: from a successful Acquire until Release,
// Client.Close, or the moment it is lost. While it is held, the Client
// renews it in the background about every TTL/3.
//
// A lease can be lost at any moment: a majority of masters unreachable, a
// process paused past its TTL. Done and Err say so as soon as the Client can
// know, and always before any other client could take the lock: validity
// counts from the moment the acquire (or the last renewal that reached a
// majority) was sent, less a drift margin, on the monotonic clock. But the
// check happens in this process, and a process can be paused between any
// check and the write it guards. Storage that must never see two writers
// should accept a write only with a [Lease.Token] no lower than any it has
// seen: the token is what protects it, not the lease.
//
// A machine that is suspended (not merely a process that is stopped) stops
// Go's monotonic clock; then even Err can report a lease as held after its
// keys expired. Only the fencing token protects against that.
//
// All methods are safe for concurrent use.
type Lease struct {
	c     *Client
	req   *request
	value string
	token uint64

	ctx    context.Context // cancelled with the cause when the lease ends
	cancel context.CancelCauseFunc

	ttl        atomic.Int64 // the TTL renewals use, in ns; Extend changes it
	validUntil atomic.Int64 // end of validity on c's monotonic clock (c.now)
	releasing  atomic.Bool  // Release was called: later calls return nil

	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu    sync.Mutex // guards err, timer, children and the renewal state below
	err   error      // nil while held
	timer *time.Timer

	// children are the contexts made by Context, cancelled by end itself
	// (not by a goroutine of the context package): when Release returns,
	// they are done.
	children  map[uint64]context.CancelCauseFunc
	nextChild uint64

	// Renewal state (renew.go), guarded by mu. acks[i] is how long master
	// i keeps the key at least, by its last answer (0: unknown, or gone).
	// args are renew.lua's arguments for l, made once per TTL: renewals
	// send them to every master, every third of a TTL.
	args []string
	acks []int64
	// ackCap[i], when not 0, bounds the ack that the renewal of l still
	// unanswered on master i can give: an Extend asked for a shorter TTL
	// after it was sent, and that TTL reaches the key there once Extend's
	// own command runs, however late the older answer comes.
	ackCap []int64
	// unknownTTL[i], when not 0, is the shortest TTL of l's renewals to
	// master i whose answer never came: such a command may still arrive,
	// late, and set that TTL then, so no later ack there counts beyond it
	// (TestAdvLateRenewalAfterLongerExtend).
	unknownTTL []time.Duration
	inflight   uint64   // masters with a renewal of this lease unanswered
	gone       uint64   // masters that answered the key is gone or taken
	goneHow    []string // per master in gone: what said so (goneLocked)
	// renewErr[i] says why master i's last renewal of l got no answer,
	// nil since one did; allocated at the first such renewal. The error
	// of a lease whose validity ran out names them (expiredError).
	renewErr  []error
	eventWait uint64 // masters where a read of the key waits for the acquire (lease_events.go)
	// Guarded by the Client's keyEvents.mu, not mu: the masters where a
	// renewal of l is unanswered, the messages naming its key counted
	// there until it is (keyEvents.renewing, renewedOn).
	renewCounting uint64
	renewCount    []uint8
	settleCheck   bool          // a goroutine takes the acquire's last answers to judge a loss (goneLocked)
	extending     bool          // an Extend runs: background renewals wait
	freed         chan struct{} // if not nil, closed when a renewal is answered

	turn *turn // this Client's turn at the name: passed on when the lease ends

	// waiter is the id under which the Acquire that took the lock waited
	// in the masters' lines ("" if it never did): a handoff (handoff.go)
	// does not count it as another Client's waiter while it leaves them.
	waiter string

	// The acquire's answers still to come when it returned (a majority
	// sufficed). A delete must wait for them: the goroutine sending one
	// may not even have handed its command to rueidis yet, and a delete
	// that overtook it would leave its key behind for a whole TTL.
	stragglers <-chan reply
	straggling uint64 // the masters still to answer then; fixed once shared
	// handedSent, for a lease a handoff made (handoff.go), is closed once
	// handoff.lua went out to every master: to one still answering the
	// old lease's acquire it goes late, and a renewal must not overtake
	// it there (TestAdv6RenewalOvertakesDelayedHandoff). Guarded by mu;
	// nil once closed, and for an acquired lease.
	handedSent <-chan struct{}
	// unanswered marks the masters whose answer to the acquire (or
	// handoff) never came, stragglers included once settled; guarded by
	// mu.
	unanswered uint64
	// validUntilAtStart is the validity the acquire (or handoff) gave: a
	// straggler's grant guarantees the key there that long.
	validUntilAtStart int64
	grants            func(rueidis.RedisResult) bool // whether a straggler's answer set the key
	pending           int
	settleOnce        sync.Once
	settled           atomic.Bool // settle has read every answer

	// extendMu lets one Extend run at a time.
	//
	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	extendMu sync.Mutex

	// Renewal scheduling, guarded by the renewer's mu.
	due   int64 // next renewal on c's monotonic clock
	index int   // position in the renewer's heap; -1 when not queued
}

func newLease(c *Client, req *request, value string, token uint64, start time.Time, t *turn) *Lease {
	n := len(c.nodes)
	acks := make([]int64, 2*n) // acks and ackCap, in one allocation
	l := &Lease{c: c, req: req, value: value, token: token, turn: t, index: -1, acks: acks[:n:n], ackCap: acks[n:], unknownTTL: make([]time.Duration, n)}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.ttl.Store(int64(req.ttl))
	l.args = c.renewArgs(value, req.ttl)
	l.validUntil.Store(c.at(start) + int64(req.ttl-c.drift(req.ttl)))
	l.validUntilAtStart = l.validUntil.Load()
	return l
}

// start arms the deadline timer and schedules the first renewal at due
// (on c's monotonic clock).
func (l *Lease) start(due int64) {
	l.mu.Lock()
	l.timer = time.AfterFunc(time.Duration(l.validUntil.Load()-l.c.now()), l.checkDeadline)
	l.mu.Unlock()
	l.c.renewer.add(l, due)
}

// Name returns the lock's name.
func (l *Lease) Name() string { return l.req.name }

// Token returns the lease's fencing token: strictly greater than the token
// of every lease on this lock that was acquired before this one, on any
// Client. Pass it to storage with every write the lock guards, and have
// storage refuse a write whose token is lower than one it has already
// accepted. Tokens are not consecutive.
func (l *Lease) Token() uint64 { return l.token }

// Owner returns the owner stored with the lease on the masters: its
// Client's Config.Owner (by default "hostname:pid"). Status and Watch
// show it to others.
func (l *Lease) Owner() string { return l.c.cfg.owner }

// Metadata returns the metadata stored with the lease on the masters: what
// WithMetadata gave the Acquire, TryAcquire or Do that took it ("" for
// none). Status and Watch show it to others.
func (l *Lease) Metadata() string { return l.req.metadata }

// Done returns a channel that is closed when the lease ends: released,
// lost, or its Client closed. It returns the same channel every time.
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Err returns nil while the lease is held. After Done is closed it returns
// an error wrapping [ErrReleased] (Release or Client.Close; the latter also
// wraps [ErrClosed]) or [ErrLeaseLost], with the cause. Err checks the
// lease's validity itself when called: it never returns nil once the
// validity has run out, even in the first instant after the process was
// paused and before any timer has fired.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkLocked(l.c.now())
	return l.err
}

// Deadline returns the time until which the lease is known to be held,
// unless a renewal moves it later. It is a reading of the monotonic clock,
// valid within this process only.
func (l *Lease) Deadline() time.Time {
	return l.c.epoch.Add(time.Duration(l.validUntil.Load()))
}

// TTL returns the TTL the lease is renewed with.
func (l *Lease) TTL() time.Duration { return time.Duration(l.ttl.Load()) }

// Context returns a copy of parent that is cancelled when the lease ends,
// with the lease's Err as its cause (context.Cause), or when parent is
// done. Use it for work that must stop the moment the lease is lost. The
// returned cancel function releases the context's resources, not the lease.
//
// The context is done by the time the lease's end is visible: when Release
// returns, when Done is closed, or when Err first reports the end
// (TestLeaseContextDoneWhenReleaseReturns).
func (l *Lease) Context(parent context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(parent)
	lc := &leaseCtx{l: l}
	lc.outer, _ = parent.Value(leaseCtxKey{}).(*leaseCtx)
	ctx := context.WithValue(cctx, leaseCtxKey{}, lc) // for Release (endedWith)
	// ended: the lease's end cancels ctx, and says so unless parent
	// ended it first (another lease's Context, say).
	ended := func(err error) {
		if cctx.Err() == nil {
			lc.ended.Store(true)
		}
		cancel(err)
	}
	l.mu.Lock()
	if l.checkLocked(l.c.now()) {
		err := l.err
		l.mu.Unlock()
		ended(err)
		return ctx, func() { cancel(context.Canceled) }
	}
	if l.children == nil {
		l.children = make(map[uint64]context.CancelCauseFunc)
	}
	id := l.nextChild
	l.nextChild++
	l.children[id] = ended
	l.mu.Unlock()
	return ctx, func() {
		l.mu.Lock()
		delete(l.children, id)
		l.mu.Unlock()
		cancel(context.Canceled)
	}
}

// leaseCtxKey keys, in a context from Lease.Context, its leaseCtx.
type leaseCtxKey struct{}

// leaseCtx is what a context from Lease.Context carries: the lease it is
// of, whether the lease's end is what ended it, and the leaseCtx of the
// Lease.Context it was made in, if any. A context nested in another
// lease's ends with the same cause (ErrReleased) when that one is
// released, and carries this lease all the same; one nested in its own
// lease's may end by its parent's cancel first (endedWith).
type leaseCtx struct {
	l     *Lease
	ended atomic.Bool
	outer *leaseCtx
}

// setValidityLocked moves the validity to v after renewals reached a
// majority: later only, for a background renewal; also earlier for Extend
// (exact), whose TTL may be shorter. A renewal that comes back after the
// validity ran out cannot revive the lease: Err may already have said it
// was lost. It reports whether the validity moved. l.mu is held.
func (l *Lease) setValidityLocked(v, now int64, exact bool) bool {
	if exact && now >= v {
		l.validUntil.Store(v) // already past: checkLocked ends the lease
	}
	if l.checkLocked(now) {
		return false
	}
	if exact || v > l.validUntil.Load() {
		l.validUntil.Store(v)
		l.timer.Reset(time.Duration(v - now))
		return true
	}
	return false
}

// checkLocked ends the lease as lost if its validity has run out by now,
// and reports whether it has ended (for whatever reason). l.mu is held.
func (l *Lease) checkLocked(now int64) bool {
	if l.err == nil && now >= l.validUntil.Load() {
		l.endLocked(l.expiredErrorLocked())
	}
	return l.err != nil
}

// expiredErrorLocked is the Err of a lease whose validity ran out: it
// names the masters whose renewals failed, were still unanswered, or found
// the key gone or taken, and why. l.mu is held.
func (l *Lease) expiredErrorLocked() error {
	e := &expiredError{name: l.req.name}
	until := l.validUntil.Load()
	for i, n := range l.c.nodes {
		switch {
		case l.gone&(1<<i) != 0:
			// Its key was found gone or taken there: too few masters
			// were left to renew on (TestAdvReadExpiredErrorOmitsGoneMaster).
			e.masters = append(e.masters, i)
			e.errs = append(e.errs, &NodeError{Addr: n.addr, Err: errors.New("key " + l.goneHow[i])})
		case l.acks[i] > until:
			// It renewed: not why the lease ran out.
		case l.renewErr != nil && l.renewErr[i] != nil:
			e.masters = append(e.masters, i)
			e.errs = append(e.errs, l.renewErr[i])
		case l.inflight&(1<<i) != 0:
			e.masters = append(e.masters, i)
			e.errs = append(e.errs, &NodeError{Addr: n.addr, Err: errors.New("renewal not answered yet")})
		}
	}
	return e
}

// expiredError is the Err of a lease whose validity ran out before a
// renewal reached a majority; it wraps ErrLeaseLost and the *NodeError of
// each master that failed to renew it.
type expiredError struct {
	name    string
	masters []int   // the masters that failed, in order
	errs    []error // why, per entry of masters
}

func (e *expiredError) Error() string {
	msg := fmt.Sprintf("%v: %q: its validity ran out before a renewal reached a majority of masters", ErrLeaseLost, e.name)
	if len(e.errs) == 0 {
		return msg
	}
	parts := make([]string, len(e.errs))
	for k, err := range e.errs {
		parts[k] = fmt.Sprintf("master %d: %v", e.masters[k], err)
	}
	return msg + " (" + strings.Join(parts, "; ") + ")"
}

func (e *expiredError) Unwrap() []error { return append([]error{ErrLeaseLost}, e.errs...) }

// checkDeadline runs when the validity timer fires.
func (l *Lease) checkDeadline() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.c.now()
	if l.checkLocked(now) {
		return
	}
	l.timer.Reset(time.Duration(l.validUntil.Load() - now)) // a renewal moved it
}

func (l *Lease) lostError(reason string) error {
	return fmt.Errorf("%w: %q: %s", ErrLeaseLost, l.req.name, reason)
}

func isLost(err error) bool { return errors.Is(err, ErrLeaseLost) }

// end ends the lease with cause, unless it has ended already; it reports
// whether it did.
func (l *Lease) end(cause error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endLocked(cause)
}

// endLocked is end with l.mu held. It closes Done; the Client forgets the
// lease and stops renewing it.
func (l *Lease) endLocked(cause error) bool {
	if l.err != nil {
		return false
	}
	l.err = cause
	if l.timer != nil {
		l.timer.Stop()
	}
	lost := isLost(cause)
	if lost {
		// Counted and logged before Done closes: whoever sees Done closed
		// also sees the loss in the metrics.
		l.c.leaseLost(l, cause)
	}
	// The contexts of Context first, then Done: whoever sees Done closed
	// finds them done too.
	for _, cancel := range l.children {
		cancel(cause)
	}
	l.children = nil
	l.cancel(cause)
	l.c.forget(l)
	if l.c.renewer != nil {
		l.c.renewer.remove(l)
	}
	if lost {
		// Let this Client's next waiter go now: as after Release, its
		// first attempt counts keys that still hold our value as free.
		// And delete what is left of them (only where they still hold
		// this lease's value): left in place, they would block every other
		// client for a TTL. Batched with other lost leases (batch.go):
		// when many are lost at once, a goroutine and a delete per lease
		// would queue ahead of the renewals that keep the others.
		l.turn.pass(l.replaced())
		l.c.reap(l)
	}
	return true
}

// answers records what the acquire (or handoff) that made l learnt of each
// master: what a grant guarantees (acks), which answers never came
// (unanswered), and the answers still to come, which settle waits for;
// grants tells from an answer whether it set the key (nil: strayAcquire,
// for an acquire's). l is not shared yet.
func (l *Lease) answers(state []int, replies <-chan reply, toCome int, grants func(rueidis.RedisResult) bool) {
	for i, s := range state {
		switch s {
		case granted:
			l.acks[i] = l.validUntil.Load()
		case failed:
			l.unanswered |= 1 << i // the command may still arrive
		case pending:
			l.straggling |= 1 << i
		}
	}
	l.stragglers, l.pending, l.grants = replies, toCome, grants
}

// fanoutAfterAcquire sends a command to every master at once, as
// Client.fanoutSent does, except that to a master still to answer the
// acquire (or handoff) that made l it goes once that answer is in
// (settle): the acquire's goroutine may not even have handed its command
// to rueidis yet, and a command that overtook it would find the key
// without l's value. That answer comes within the per-master timeout of
// the acquire, which began before: twice the timeout bounds the wait and
// the command, which has the per-master timeout of its own. Release's
// deletes and the handoff go this way.
//
// The channel it returns, closed once every command went out, is made
// only when wantSent (nil otherwise).
func (l *Lease) fanoutAfterAcquire(ctx context.Context, wantSent bool, send func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult) (<-chan reply, int, <-chan struct{}) {
	timeout := l.req.timeout
	if l.straggling == 0 {
		return l.c.fanoutWith(ctx, timeout, nil, send, wantSent) // no wait: no closure
	}
	timeout *= 2
	return l.c.fanoutWith(ctx, timeout, nil, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		if l.straggling&(1<<node) != 0 {
			l.settle()
			var cancel context.CancelFunc
			ctx, cancel = withTimeout(ctx, l.req.timeout)
			defer cancel()
		}
		return send(ctx, node, rc)
	}, wantSent)
}

// settle waits for the acquire's last answers (each bounded by the
// per-master timeout), once.
func (l *Lease) settle() {
	l.settleOnce.Do(func() {
		for range l.pending {
			r := <-l.stragglers
			if r.err != nil {
				l.mu.Lock()
				l.unanswered |= 1 << r.node
				l.mu.Unlock()
			}
			if r.err == nil && l.strayGranted(r.res) {
				// The key is set there too: what the grant guarantees
				// counts for Release's reading of its deletes.
				l.mu.Lock()
				if l.acks[r.node] == 0 && l.gone&(1<<r.node) == 0 {
					l.acks[r.node] = l.validUntilAtStart
				}
				l.mu.Unlock()
			}
		}
		l.settled.Store(true)
		if l.c.events != nil {
			l.c.events.settledLate(l)
		}
	})
}

// strayGranted reports whether res, a straggler's answer, set the key:
// by grants, or strayAcquire when grants is nil.
func (l *Lease) strayGranted(res rueidis.RedisResult) bool {
	if l.grants != nil {
		return l.grants(res)
	}
	return l.strayAcquire(res)
}

// freeSlot lets this Client's next waiter for the name go, once.
func (l *Lease) freeSlot() { l.turn.done() }
