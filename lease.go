package distlock

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/distlock/distlock/internal/script"
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
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu;
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
	// keys and args are renew.lua's, made once per TTL: renewals send them
	// to every master, every third of a TTL.
	keys, args []string
	acks       []int64
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
	inflight   uint64        // masters with a renewal of this lease unanswered
	gone       uint64        // masters that answered the key is gone or taken
	extending  bool          // an Extend runs: background renewals wait
	freed      chan struct{} // if not nil, closed when a renewal is answered

	turn *turn // this Client's turn at the name: passed on when the lease ends

	// waiter is the id under which the Acquire that took the lock waited
	// in master 0's line ("" if it never did): a handoff (handoff.go) does
	// not count it as another Client's waiter while it leaves the line.
	waiter string

	// The acquire's answers still to come when it returned (a majority
	// sufficed). A delete must wait for them: the goroutine sending one
	// may not even have handed its command to rueidis yet, and a delete
	// that overtook it would leave its key behind for a whole TTL.
	stragglers <-chan reply
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

	// extendMu lets one Extend run at a time.
	//
	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	extendMu sync.Mutex

	// Renewal scheduling, guarded by the renewer's mu.
	due   int64 // next renewal on c's monotonic clock
	index int   // position in the renewer's heap; -1 when not queued
}

func newLease(c *Client, req *request, value string, token uint64, start time.Time, t *turn) *Lease {
	l := &Lease{c: c, req: req, value: value, token: token, turn: t, index: -1, acks: make([]int64, len(c.nodes)), ackCap: make([]int64, len(c.nodes)), unknownTTL: make([]time.Duration, len(c.nodes))}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.ttl.Store(int64(req.ttl))
	l.keys, l.args = []string{req.key}, renewArgs(value, req.ttl)
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
	ctx, cancel := context.WithCancelCause(parent)
	l.mu.Lock()
	if l.checkLocked(l.c.now()) {
		err := l.err
		l.mu.Unlock()
		cancel(err)
		return ctx, func() { cancel(context.Canceled) }
	}
	if l.children == nil {
		l.children = make(map[uint64]context.CancelCauseFunc)
	}
	id := l.nextChild
	l.nextChild++
	l.children[id] = cancel
	l.mu.Unlock()
	return ctx, func() {
		l.mu.Lock()
		delete(l.children, id)
		l.mu.Unlock()
		cancel(context.Canceled)
	}
}

// Release ends the lease and deletes its keys on every master (only where
// they still hold this lease's value). Done is closed and Err reports
// ErrReleased before anything is sent. When another goroutine of this
// Client waits for the name, Release hands the keys over to it instead, in
// one round trip that draws its token (see Acquire); otherwise that
// goroutine goes once the deletes are answered. Release waits for the
// masters' answers until ctx ends, and returns a *QuorumError if fewer than
// a majority confirmed (the keys left then expire with their TTL). A ctx
// that ends because the lease did, as one from Lease.Context or Do does, is
// waited past up to its deadline. The deletes go out even when ctx has
// already ended: keys left behind would block the lock for a whole TTL. A
// second Release returns nil at once, whatever the first returned (the
// first reports the outcome, the loss included). Release returns an error wrapping
// ErrLeaseLost when the lease had been lost: by Err's account, or because
// the deletes found its keys gone or held by another value on so many
// masters that no majority held them (expired early, deleted or
// overwritten by another program: TestReleaseOfLostLease), so that the
// holder learns its section may not have been exclusive. It still deletes
// what it can.
func (l *Lease) Release(ctx context.Context) error {
	if l.releasing.Swap(true) {
		return nil // a second Release: the first reports the outcome
	}
	if err := l.c.enter(); err != nil {
		// Close has begun: it ends and deletes every lease still held.
		<-l.Done()
		if err := l.Err(); isLost(err) {
			return err
		}
		return nil
	}
	defer l.c.exit()
	if err := l.Err(); err != nil && !isLost(err) {
		return nil // released before
	}
	ctx, span := l.c.tel.start(ctx, spanRelease, l.req.name)
	handed, first, next := l.handOff(ctx)
	prev := error(ErrReleased)
	if !first {
		l.mu.Lock()
		l.checkLocked(l.c.now())
		first = l.err == nil
		if first {
			l.endLocked(ErrReleased)
		}
		prev = l.err
		l.mu.Unlock()
	}
	if span != nil {
		span.SetAttributes(attribute.Int64("distlock.lease.token", int64(l.token)), attribute.Bool("distlock.release.handoff", handed))
	}
	var err error
	switch {
	case handed:
	case !first && !isLost(prev):
		// released meanwhile, by a concurrent Release
	default:
		err = l.release(ctx, span, prev, first, next)
	}
	end(span, err)
	return err
}

// release deletes the keys of a lease that Release ended (first) or found
// lost (prev), recording each master's error on span.
//
// also, when set, is another value of this lease's that the keys may hold
// (a local handoff that failed: handoff.go), deleted too. A key found gone
// or taken counts as a sign the lease was lost only while that master's
// last answer still guaranteed the key: one that expired on time after
// Release was called, because a master answered late, does not
// (TestAdvReleaseAtDeadlineNotLost).
func (l *Lease) release(ctx context.Context, span trace.Span, prev error, first bool, also string) error {
	called := l.c.now()
	l.settle()
	l.mu.Lock()
	acks := slices.Clone(l.acks)
	unknown := l.unanswered
	l.mu.Unlock()
	// Where the acquire's answer never came it may still arrive, after
	// this delete: bury the value there (TestAdv2LateAcquireAfterRelease).
	plain := l.req.releaseCall(l.value, also, false, 0)
	buried := l.req.releaseCall(l.value, also, true, l.TTL())
	replies, count := l.c.fanout(context.WithoutCancel(ctx), l.req.timeout, nil, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		call := plain
		if unknown&(1<<node) != 0 {
			call = buried
		}
		return script.Release.Exec(ctx, rc, call.Keys, call.Args)
	})
	// This Client's next waiter goes once the deletes are answered (or
	// Release stops waiting for them), not before: its acquire, which
	// counts keys still holding our value as free, would otherwise replace
	// them, and our delete would find another value there, as if the lease
	// had been lost. Its first attempt still counts keys holding our value
	// as free: a delete not yet answered is no reason to wait.
	errs := make([]error, len(l.c.nodes))
	ok := 0
	var gone, taken []int // masters where the key was gone, or held another value
	done := ctx.Done()
	var deadline <-chan time.Time
	var ctxErr error
	for answered := 0; answered < count; {
		select {
		case r := <-replies:
			answered++
			if r.err != nil {
				errs[r.node] = r.err
				continue
			}
			ok++
			// A key found gone or taken is a sign of loss, unless that
			// master's last answer guaranteed it when Release was called
			// and it expired on time before this answer came
			// (TestAdvReleaseAtDeadlineNotLost); a master that never
			// granted, or where a renewal found it gone, counts
			// (TestAdv2ReleaseMissesLossWhereAckIsZero). A buried master
			// answers as release.lua does.
			v, _ := r.res.AsInt64()
			expiredOnTime := called <= acks[r.node] && acks[r.node] <= l.c.now()
			if v != 1 && !expiredOnTime {
				if v == 0 {
					gone = append(gone, r.node)
				} else {
					taken = append(taken, r.node)
				}
			}
			continue
		case <-done:
			if errors.Is(context.Cause(ctx), context.Cause(l.ctx)) {
				// ctx comes from l.Context (or Do): it ended because
				// the lease did, which is no reason to stop waiting.
				// Its deadline still is.
				done = nil
				if d, has := ctx.Deadline(); has {
					t := time.NewTimer(time.Until(d))
					defer t.Stop()
					deadline = t.C
				}
				continue
			}
			ctxErr = ctx.Err()
		case <-deadline:
			ctxErr = context.DeadlineExceeded
		}
		// The caller stops waiting; the deletes still complete, and the
		// next local waiter (unless handed the lock above) goes once they
		// have.
		left := count - answered
		l.c.spawn(func() {
			for range left {
				<-replies
			}
			l.turn.pass(l.value)
		})
		return withErr(prev, first, withCtx(&QuorumError{Op: "release", Name: l.req.name, Granted: ok, Needed: l.c.quorum, Errs: errs}, ctxErr))
	}
	l.turn.pass(l.value)
	l.c.recordMasterErrors(span, errs)
	var err error
	switch {
	case first && len(gone)+len(taken) > len(l.c.nodes)-l.c.quorum:
		// A majority no longer held the keys when the deletes came: the
		// lease was lost before Release, and its holder must hear it.
		err = l.lostError(fmt.Sprintf("release found its key gone on masters %v and held by another value on masters %v: it was not held by a majority", gone, taken))
		if ok < l.c.quorum {
			err = fmt.Errorf("%w (deleting its keys: %w)", err, &QuorumError{Op: "release", Name: l.req.name, Granted: ok, Needed: l.c.quorum, Errs: errs})
		}
	case ok < l.c.quorum:
		err = &QuorumError{Op: "release", Name: l.req.name, Granted: ok, Needed: l.c.quorum, Errs: errs}
	}
	return withErr(prev, first, err)
}

// withErr returns the error of a Release: the lost lease's error, if it was
// lost, joined with the deletion's.
func withErr(prev error, first bool, err error) error {
	if first {
		return err
	}
	if err == nil {
		return prev
	}
	return fmt.Errorf("%w (deleting its keys: %w)", prev, err)
}

// Extend renews the lease now on every master, with a new TTL that later
// renewals keep once Extend has succeeded (after a failed Extend they go
// on with the TTL the lease had). It returns nil when a majority renewed; then the lease is
// valid for ttl (less drift) from when Extend sent its commands. A shorter
// ttl shortens the validity the moment Extend is called, whether or not it
// succeeds: from then on no master's answer given under the longer TTL
// counts beyond it, not even the answer of a renewal already in flight
// (TestExtendShorterWithRenewalInFlight). Extend waits for a majority as long as the lease is valid,
// sending again after a while to a master that failed, and, to a master
// still answering a background renewal of the lease, once it has answered
// that. It returns an error wrapping ErrLeaseLost (and ends the lease)
// when a majority reports the keys gone or taken, or the validity runs out
// first; a *QuorumError wrapping ctx's error when ctx ends first (the lease
// then stays held until its current validity runs out); and the lease's
// Err when it had already ended.
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl, l.c.cfg.driftFactor, l.c.cfg.nodeTimeout); err != nil {
		return fmt.Errorf("distlock: extend %q: %w", l.req.name, err)
	}
	ttl = ttl.Truncate(time.Millisecond)
	if err := l.Err(); err != nil {
		return err
	}
	if err := l.c.enter(); err != nil {
		return err
	}
	defer l.c.exit()
	l.extendMu.Lock()
	defer l.extendMu.Unlock()
	ctx, span := l.c.tel.start(ctx, spanExtend, l.req.name)
	if span != nil {
		span.SetAttributes(attribute.Int64("distlock.lease.token", int64(l.token)), attribute.Int64("distlock.lease.ttl_ms", ttl.Milliseconds()))
	}
	errs := make([]error, len(l.c.nodes))
	err := l.extend(ctx, ttl, errs)
	l.c.recordMasterErrors(span, errs)
	end(span, err)
	return err
}

// extend is Extend's renewal, with l.extendMu held. It sends through the
// background renewal's path (renew.go) and keeps background renewals of l
// from sending meanwhile, so that at most one renewal of l is ever
// unanswered on a master: then each answer says what the key's expiry is
// now. It records each master's error in errs.
func (l *Lease) extend(ctx context.Context, ttl time.Duration, errs []error) error {
	l.settle() // a late acquire must not undo the new TTL
	c := l.c
	l.mu.Lock()
	now := c.now()
	if l.checkLocked(now) {
		l.mu.Unlock()
		return l.Err()
	}
	l.extending = true
	// Once sent, the new TTL may reach any master, answered or not: every
	// ack given under a longer TTL stops counting beyond it now, on every
	// master, including the answers of renewals still in flight.
	if v := now + int64(ttl-c.drift(ttl)); v < l.validUntil.Load() {
		l.capAcksLocked(v)
		l.setValidityLocked(v, now, true)
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.extending = false
		l.rescheduleLocked(c.now())
		l.mu.Unlock()
	}()

	type answer struct {
		node   int
		v      int64
		err    error
		result int // Lease.answered's
	}
	answers := make(chan answer, len(c.nodes)) // one per master in flight at most
	args := renewArgs(l.value, ttl)
	var sent uint64 // masters sent Extend's command, unless it failed
	var held uint64 // masters whose Extend failed, until again
	var again <-chan time.Time
	ok := 0
	for {
		l.mu.Lock()
		start := c.now()
		mask := c.all &^ l.inflight &^ l.gone &^ sent &^ held
		l.sendingLocked(mask, start, ttl)
		sent |= mask
		gone := bits.OnesCount64(l.gone)
		var freed <-chan struct{}
		if c.all&^sent&^l.gone != 0 {
			// Masters still answering a background renewal: their turn
			// comes when they have.
			if l.freed == nil {
				l.freed = make(chan struct{})
			}
			freed = l.freed
		}
		until := l.validUntil.Load()
		l.mu.Unlock()
		for i := range c.nodes {
			if mask&(1<<i) == 0 {
				continue
			}
			c.spawn(func() {
				calls := []rueidis.LuaExec{{Keys: l.keys, Args: args}}
				ints, err := c.pipeline(c.stopping, c.renewWait(until, ttl), i, script.Renew, calls)
				answers <- answer{i, ints[0], err, l.answered(i, start, ttl, ints[0])}
			})
		}
		if ok >= c.quorum {
			l.mu.Lock()
			l.ttl.Store(int64(ttl))
			l.args = renewArgs(l.value, ttl)
			l.setValidityLocked(l.quorumAckLocked(), c.now(), true)
			l.mu.Unlock()
			c.renewals(renewOK, 1)
			return l.Err()
		}
		select {
		case a := <-answers:
			errs[a.node] = a.err
			switch a.v {
			case noReply: // send again, after a while
				sent &^= 1 << a.node
				held |= 1 << a.node
				if again == nil {
					again = time.After(l.resendDelay(ttl))
				}
			case 1:
				ok++
			}
		case <-again:
			held, again = 0, nil
		case <-freed:
		case <-l.Done(): // lost: its validity ran out, or a majority said gone
			err := l.Err()
			if isLost(err) {
				c.renewals(renewGone, 1)
			}
			return err
		case <-ctx.Done():
			c.renewals(renewRetry, 1)
			return withCtx(&QuorumError{Op: "extend", Name: l.req.name, Granted: ok, Held: gone, Needed: c.quorum, Errs: errs}, ctx.Err())
		}
	}
}

// resendDelay is how long Extend to ttl waits before it sends again to a
// master that failed: a tenth of the shorter of ttl and the lease's TTL,
// and no more than a third of the validity left, so that a longer TTL
// never waits past the lease's end for a master that was back long
// before (TestRedislockRefreshRetryTransientError, "longer TTL": 6 s for a
// 1 min Extend of a 5 s lease). At least 5 ms.
func (l *Lease) resendDelay(ttl time.Duration) time.Duration {
	d := min(ttl, l.TTL()) / 10
	if left := time.Duration(l.validUntil.Load()-l.c.now()) / 3; left < d {
		d = left
	}
	return max(d, 5*time.Millisecond)
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
		l.endLocked(l.lostError("its validity ran out before a renewal reached a majority of masters"))
	}
	return l.err != nil
}

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
		l.turn.pass(l.value)
		l.c.reap(l)
	}
	return true
}

// settle waits for the acquire's last answers (each bounded by the
// per-master timeout), once.
// answers records what the acquire (or handoff) that made l learnt of each
// master: what a grant guarantees (acks), which answers never came
// (unanswered), and the answers still to come, which settle waits for;
// grants tells from an answer whether it set the key. l is not shared yet.
func (l *Lease) answers(state []int, replies <-chan reply, pending int, grants func(rueidis.RedisResult) bool) {
	for i, s := range state {
		switch s {
		case granted:
			l.acks[i] = l.validUntil.Load()
		case failed:
			l.unanswered |= 1 << i // the command may still arrive
		}
	}
	l.stragglers, l.pending, l.grants = replies, pending, grants
}

func (l *Lease) settle() {
	l.settleOnce.Do(func() {
		for range l.pending {
			r := <-l.stragglers
			if r.err != nil {
				l.mu.Lock()
				l.unanswered |= 1 << r.node
				l.mu.Unlock()
			}
			if r.err == nil && l.grants(r.res) {
				// The key is set there too: what the grant guarantees
				// counts for Release's reading of its deletes.
				l.mu.Lock()
				if l.acks[r.node] == 0 {
					l.acks[r.node] = l.validUntilAtStart
				}
				l.mu.Unlock()
			}
		}
	})
}

// freeSlot lets this Client's next waiter for the name go, once.
func (l *Lease) freeSlot() { l.turn.done() }
