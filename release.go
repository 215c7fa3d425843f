package distlock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distlock/distlock/internal/quorum"
	"github.com/distlock/distlock/internal/script"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Release ends the lease and deletes its keys on every master (only where
// they still hold this lease's value). Done is closed and Err reports
// ErrReleased before anything is sent. When another goroutine of this
// Client waits for the name, Release hands the keys over to it instead, in
// one round trip that draws its token (see Acquire).
//
// Release returns once the outcome is known: a majority of masters
// confirmed the delete, or found the keys gone or held by another value.
// The deletes on slower masters go on in the background, and Close waits
// for them; until one lands, that master may still hold the released key
// and refuse an acquire there, never on a majority
// (TestReleaseAtMajorityPace); a delete such a master does not answer
// within the per-master timeout is not sent again, and the key there
// expires with its TTL. Release waits for the answers until ctx
// ends, and returns a *QuorumError if fewer than a majority confirmed (the
// keys left then expire with their TTL). A ctx that ends because the lease
// did, as one from Lease.Context or Do does, is waited past up to its
// deadline. The deletes go out even when ctx has already ended: keys left
// behind would block the lock for a whole TTL. Release then returns at
// once, with a *QuorumError that says the deletes were not confirmed
// (not that the lock is stuck) and matches ctx's error
// (TestReleaseWithEndedContext); in a deferred Release, pass
// context.WithoutCancel(ctx) to wait for them. A second Release returns
// nil at once, whatever the first returned (the first reports the
// outcome, the loss included).
//
// Release returns an error wrapping ErrLeaseLost when the lease had been
// lost: by Err's account, or because the deletes found its keys gone or
// held by another value on so many masters that no majority held them
// (expired early, deleted or overwritten by another program:
// TestReleaseOfLostLease, TestReleaseAtMajorityReportsLoss), so that the
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
	// When Release was called: a key found gone that expired on time after
	// this does not count as a loss, however long a handoff tried first
	// (TestAdv5ReleaseAtDeadlineWithLocalWaiterNotLost).
	called := l.c.now()
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
		err = l.release(ctx, span, called, prev, first, next)
	}
	end(span, err)
	return err
}

// release deletes the keys of a lease that Release, called at called (on
// the Client's clock), ended (first) or found lost (prev), recording each
// master's error on span.
//
// also, when set, is another value of this lease's that the keys may hold
// (a local handoff that failed: handoff.go), deleted too. A key found gone
// or taken counts as a sign the lease was lost only while that master's
// last answer still guaranteed the key: one that expired on time after
// Release was called, because a master answered late, does not
// (TestAdvReleaseAtDeadlineNotLost).
func (l *Lease) release(ctx context.Context, span trace.Span, called int64, prev error, first bool, also string) error {
	replies, count := l.sendDeletes(ctx, also)
	d := deletes{tally: quorum.NewTally(len(l.c.nodes)), errs: make([]error, len(l.c.nodes))}
	// Release returns once the outcome is known: a majority deleted the
	// keys (then no majority can have lost them), or found them gone or
	// taken (the lease was lost). The deletes still to be answered, on
	// masters that are slow or far, go on in the background (Close waits
	// for them): a slow minority costs nothing (TestReleaseAtMajorityPace).
	decided := func() bool {
		return d.tally.Won() || first && d.tally.Outvoted() && d.tally.ReachKnown() || d.tally.Pending() == 0
	}
	answered, ctxErr := l.awaitDeletes(ctx, replies, count, decided, func(r reply) {
		// A key found gone or taken is a sign of loss, unless that
		// master's last answer guaranteed it when Release was called
		// and it expired on time before this answer came
		// (TestAdvReleaseAtDeadlineNotLost); a master that never
		// granted, or where a renewal found it gone, counts
		// (TestAdv2ReleaseMissesLossWhereAckIsZero). A buried master
		// answers as release.lua does.
		ack := l.ack(r.node)
		d.record(r, called <= ack && ack <= l.c.now())
	})
	// This Client's next waiter goes now: once the outcome is known, its
	// acquire may replace keys that still hold our value (it counts them
	// as free), and a delete of ours that then finds another value there
	// no longer matters. Where the deletes are still on their way, the
	// next waiter's first attempt counts keys holding our value as free.
	left := count - answered
	if left > 0 {
		l.c.queue.deleting(l.req.name, l.replaced())
		l.c.wg.Add(1) // as spawn, with one closure fewer
		go l.drainDeletes(replies, left)
	}
	l.turn.pass(l.replaced())
	if ctxErr != nil {
		// The caller stops waiting; the deletes still complete.
		l.c.silentErrs(d.errs, d.heard)
		qerr := releaseError(l.req.name, d.tally, d.errs)
		qerr.unconfirmed = true
		return withErr(prev, first, withCtx(qerr, ctxErr))
	}
	l.c.recordMasterErrors(span, d.errs)
	return withErr(prev, first, l.deletesError(first, &d))
}

// drainDeletes waits for the left deletes still to be answered on
// replies, then tells the local queue they have been; it ends a goroutine
// counted in the Client's wg.
func (l *Lease) drainDeletes(replies <-chan reply, left int) {
	defer l.c.wg.Done()
	for range left {
		<-replies
	}
	l.c.queue.deleted(l.req.name, l.value)
}

// ack returns what master i's last answer guaranteed of the key: until
// when it is held there, on the Client's clock (0 if nothing).
func (l *Lease) ack(i int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks[i]
}

// sendDeletes sends release.lua to every master, deleting l's keys where
// they hold its value (or also), and returns the channel of the answers
// and how many will come. On a master still to answer the acquire, the
// delete waits for that answer first (settle): the acquire's goroutine
// may not even have handed its command to rueidis yet, and a delete that
// overtook it would leave its key behind for a whole TTL. Where the
// acquire's answer never came, it may still arrive, after this delete:
// the value is buried there (TestAdv2LateAcquireAfterRelease).
func (l *Lease) sendDeletes(ctx context.Context, also string) (<-chan reply, int) {
	// The buried call is made only for a master that needs it (rarely),
	// from the counter and TTL read now, as the plain one.
	counter, ttl := l.counter(), l.TTL()
	plain := l.req.releaseCall(l.value, also, counter, false, 0)
	replies, count, _ := l.fanoutAfterAcquire(withoutCancel(ctx), false, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		l.mu.Lock()
		unknown := l.unanswered&(1<<node) != 0
		l.mu.Unlock()
		call := plain
		if unknown {
			call = l.req.releaseCall(l.value, also, counter, true, ttl)
		}
		return script.Release.Exec(ctx, rc, call.Keys, call.Args)
	})
	return replies, count
}

// awaitDeletes passes each of the count answers to release's deletes to
// record as it comes, until decided says the outcome is known, or all
// have come, or ctx ends. A ctx that ends because the lease did (one from
// l.Context or Do) is waited past, up to its deadline. It returns how many
// answers came, and the error of the ctx that stopped the wait, nil when
// the outcome is known.
func (l *Lease) awaitDeletes(ctx context.Context, replies <-chan reply, count int, decided func() bool, record func(reply)) (answered int, err error) {
	done := ctx.Done()
	if ctx.Err() != nil && !l.endedWith(ctx) {
		// Ended before the call: the caller waits for nothing (select
		// would pick an answer that came first as often as the end).
		return 0, ctx.Err()
	}
	var deadline <-chan time.Time
	for answered < count && !decided() {
		select {
		case r := <-replies:
			answered++
			record(r)
		case <-done:
			if !l.endedWith(ctx) {
				return answered, ctx.Err()
			}
			// ctx comes from l.Context (or Do): it ended because
			// the lease did, which is no reason to stop waiting.
			// Its deadline still is.
			done = nil
			if d, has := ctx.Deadline(); has {
				t := time.NewTimer(time.Until(d))
				defer t.Stop()
				deadline = t.C
			}
		case <-deadline:
			return answered, context.DeadlineExceeded
		}
	}
	return answered, nil
}

// endedWith reports whether ctx, which has ended, is one of l's own
// (from l.Context, as Do's is) that ended because l did. Another lease's
// context, ended by its own release, has the same cause (ErrReleased), so
// the cause alone does not tell (TestAdvReadReleaseEndedCtxFromAnotherLease);
// nor does the lease ctx carries, when l's Context was nested in the
// other's: the innermost of the Lease.Contexts ctx was made in that its
// lease's end ended must be l's
// (TestAdvReadReleaseNestedCtxOfAnotherLease,
// TestReleaseCtxNestedInSameLeaseCtx, TestReleaseOuterLeaseWithInnerLeaseCtx,
// TestReleaseOuterWithInnerCtxEndedByInner).
func (l *Lease) endedWith(ctx context.Context) bool {
	lc, _ := ctx.Value(leaseCtxKey{}).(*leaseCtx)
	for ; lc != nil; lc = lc.outer {
		if lc.ended.Load() {
			// The innermost to end by its lease's end is what ended
			// ctx: those around it ended later, or by its cancel.
			return lc.l == l && errors.Is(context.Cause(ctx), context.Cause(l.ctx))
		}
	}
	return false
}

// deletes is what release heard of its deletes. A master that deleted the
// key counts as granting; one that found it gone or taken (gone, taken) as
// refusing; one that did not answer as failed, its error in errs.
// Wherever a master answered, the key no longer holds the lease's value:
// the delete is confirmed there.
type deletes struct {
	tally       quorum.Tally
	errs        []error
	gone, taken []int  // masters where the key was gone, or held another value
	heard       uint64 // masters that answered
}

// record counts master r.node's answer. expiredOnTime: the key, if gone
// there, expired when that master's last answer said, no sign of loss.
func (d *deletes) record(r reply, expiredOnTime bool) {
	d.heard |= 1 << r.node
	if r.err != nil {
		d.errs[r.node] = r.err
		d.tally.Fail()
		return
	}
	v, _ := r.res.AsInt64()
	switch {
	case v == 1 || expiredOnTime:
		d.tally.Grant()
	case v == 0:
		d.gone = append(d.gone, r.node)
		d.tally.Refuse()
	default:
		d.taken = append(d.taken, r.node)
		d.tally.Refuse()
	}
}

// deletesError returns the error of release's deletes once the outcome is
// known (a majority deleted, or found the keys gone or taken, or every
// master answered): the lease's loss, when Release ended it (first) and
// the deletes found its keys gone or taken on so many masters that no
// majority held them; a *QuorumError when fewer than a majority answered
// (Reached); else nil.
func (l *Lease) deletesError(first bool, d *deletes) error {
	var err error
	switch {
	case first && d.tally.Outvoted():
		// A majority no longer held the keys when the deletes came: the
		// lease was lost before Release, and its holder must hear it.
		err = l.lostError("release found its key " + foundWhere(d.gone, d.taken) + ": it was not held by a majority")
		if !d.tally.Reached() {
			err = fmt.Errorf("%w (deleting its keys: %w)", err, releaseError(l.req.name, d.tally, d.errs))
		}
	case !d.tally.Reached():
		err = releaseError(l.req.name, d.tally, d.errs)
	}
	return err
}

// foundWhere says on which masters release's deletes found the key gone,
// and on which held by another value, in the masters' order, leaving out
// an empty list: "gone on masters 0, 1 and held by another value on
// master 2".
func foundWhere(gone, taken []int) string {
	list := func(what string, ms []int) string {
		ms = slices.Sorted(slices.Values(ms))
		s := make([]string, len(ms))
		for i, m := range ms {
			s[i] = strconv.Itoa(m)
		}
		if len(ms) == 1 {
			return what + " on master " + s[0]
		}
		return what + " on masters " + strings.Join(s, ", ")
	}
	switch {
	case len(taken) == 0:
		return list("gone", gone)
	case len(gone) == 0:
		return list("held by another value", taken)
	}
	return list("gone", gone) + " and " + list("held by another value", taken)
}

// releaseError is the *QuorumError of a Release whose deletes too few
// masters confirmed: Granted counts the masters that answered, whatever
// they found.
func releaseError(name string, tally quorum.Tally, errs []error) *QuorumError {
	return &QuorumError{Op: "release", Name: name, Granted: tally.Granted() + tally.Refused(), Needed: tally.Needed(), Errs: errs}
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
