package distlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/quorum"
	"github.com/distlock/distlock/internal/script"
)

// newValue returns a lease value: 128 random bits, so that only the lease
// that drew it can renew or delete its keys, then suffix (owner.go).
func newValue(suffix string) string {
	var raw [16]byte
	rand.Read(raw[:]) // never fails (crypto/rand since Go 1.24)
	var digits [2 * len(raw)]byte
	hex.Encode(digits[:], raw[:])
	var b strings.Builder // the digits and suffix in one allocation
	b.Grow(len(digits) + len(suffix))
	b.Write(digits[:])
	b.WriteString(suffix)
	return b.String()
}

// grant states of one master during an attempt.
const (
	pending = iota
	granted // the key holds our value; counters[i] is the INCR it drew
	held    // another value holds the key
	failed  // no answer, or an error: the script may or may not have run
)

// try is what one attempt sends besides the request: its value, fresh for
// every attempt, so that no value is ever used again after a command
// carrying it had an unknown outcome (a stale delete, delivered late over a
// connection rueidis has replaced, then cannot remove a later lease's key:
// TestStaleDeleteAfterReconnect); a value whose keys count as free; and
// the waiting Acquire's place in the masters' lines.
type try struct {
	value    string
	replaces replaced    // keys that hold its value count as free (zero for none)
	waiter   string      // the waiting Acquire's id in the lines; "" for TryAcquire
	place    int64       // its arrival time in the lines, once a master said (0: not yet)
	join     bool        // join the lines where refused (see verdict.tally's Reached)
	late     *latePlaces // takes the places its clean-up reads; nil for TryAcquire
}

// verdict is what a failed attempt tells the next: when to try again (0
// if it cannot tell): the shortest remaining PTTL reported by masters
// where another holder has the lock, or sooner, the moment the place of
// the waiter first in line lapses unless it renews it; the waiter's
// place in line, the earliest a master gave it (0 if none did); whether
// master 0 said an earlier waiter is first there (the waiter then sleeps
// through releases until announced first); and the attempt's answers,
// whose Reached says whether no more masters failed to answer than a
// majority can spare.
type verdict struct {
	wait   time.Duration
	place  int64
	behind bool
	place0 int64           // the place master 0 gave the waiter (0 if none)
	heard0 bool            // master 0's answer is in: behind is its word
	first  bool            // a master other than 0 put the waiter first in its line
	sent   <-chan struct{} // closed once every acquire of the attempt went out
	kept   bool            // it won master 0 and kept its keys (the tie-break)
	tally  quorum.Tally    // its answers, as far as they were heard
}

// refused takes in a refusal of acquire.lua from master node, v being
// {0, pttl, behind, lapse, place}: the soonest moment worth trying again
// (the holder's PTTL, or the lapse of a first in line that may have died),
// the earliest place in line a master gave, and whether master 0 said an
// earlier waiter is first there.
func (out *verdict) refused(node int, v []int64) {
	wait := v[1] // the holder's PTTL here
	if len(v) >= 5 && v[2] == 1 {
		// An earlier waiter is first in line here.
		out.behind = out.behind || node == 0
		if v[3] > 0 && (wait <= 0 || v[3] < wait) {
			wait = v[3] // its place lapses then, if it died
		}
	}
	if len(v) >= 5 {
		if v[4] > 0 && (out.place == 0 || v[4] < out.place) {
			out.place = v[4]
		}
		if node == 0 {
			out.place0 = v[4]
		} else if v[2] == 0 && v[4] > 0 {
			out.first = true
		}
	}
	if d := time.Duration(wait) * time.Millisecond; wait > 0 && (out.wait == 0 || d < out.wait) {
		out.wait = d
	}
}

// attempt makes one Redlock acquisition of req with a.value: the acquire
// script goes to every master at once; the lock is ours when a majority
// grants it while validity remains. It returns as soon as the outcome is
// known: stragglers that grant after a success simply join the lease (its
// renewal and release cover every master), and after a failure a cleanup
// goroutine deletes a.value from every master that granted or may have
// (a timed-out command may still have run), including the stragglers once
// they answer. t, the caller's turn at the name, is handed to the lease,
// which passes it on when it ends. A waiting Acquire (a.waiter set) joins
// the masters' waiting lists where it is refused (when a.join), and a
// failed attempt of it that won master 0, with a majority answering,
// keeps its keys and says so (verdict.kept): its next attempt counts keys
// holding a.value as free (try.replaces).
//
// On failure it returns a *QuorumError and the verdict the next attempt
// needs. call follows the Acquire or TryAcquire call it is part of.
func (c *Client) attempt(ctx context.Context, req *request, a try, t *turn, call *acquireCall) (got *Lease, out verdict, err error) {
	if c.events != nil {
		// Count the messages naming the key from now until the lease is
		// tracked (lease_events.go, readNew).
		c.events.expect(req.key)
		defer func() {
			if got == nil {
				c.events.unexpect(req.key)
			}
		}()
	}
	start := time.Now()
	call.attempts++
	keep := a.waiter != ""
	value := a.value
	// Keys and args share one backing array (rueidis copies them into
	// the command).
	all := make([]string, 0, 15)
	all = append(all, req.key, req.fenceKey, req.waitKey, req.lapseKey, req.tombKey(value), req.leftKey)
	if req.legacyFenceKey != "" {
		all = append(all, req.legacyFenceKey)
	}
	keys := all[:len(all):len(all)]
	waits, place := "0", ""
	if keep && a.join {
		waits = "1" // a waiting Acquire joins the waiting lists
	}
	if a.place > 0 {
		place = strconv.FormatInt(a.place, 10)
	}
	args := append(all[len(all):], value, c.ttlArg(req.ttl), place, waits, c.waitTTLArg, a.replaces.value, a.waiter, strconv.FormatInt(a.replaces.counter, 10))
	args = args[:len(args):len(args)]
	send := c.acquireSender(keys, args)

	n := len(c.nodes)
	state := make([]int, n)
	counters := make([]int64, n)
	errs := make([]error, n)
	tally := quorum.NewTally(n)
	out.place = a.place
	defer func() { c.attempted(ctx, call, start, tally.Granted(), tally.Refused(), errs, err) }()
	record := func(r reply) {
		out.heard0 = out.heard0 || r.node == 0
		fail := func(err error) {
			state[r.node], errs[r.node] = failed, err
			tally.Fail()
		}
		if r.err != nil {
			fail(counterNotInteger(r.err, req.fenceKey))
			return
		}
		ok, v, err := parseAcquire(r.res)
		switch {
		case err != nil:
			fail(&NodeError{Addr: c.nodes[r.node].addr, Err: err})
		case !ok:
			state[r.node] = held
			tally.Refuse()
			out.refused(r.node, v)
		case checkCounter(v[1], req.fenceKey) != nil:
			// The key is set there: cleaned up like an unknown answer.
			fail(&NodeError{Addr: c.nodes[r.node].addr, Err: checkCounter(v[1], req.fenceKey)})
		default:
			state[r.node], counters[r.node] = granted, v[1]
			tally.Grant()
		}
	}

	replies, _, sent := c.fanoutSent(ctx, req.timeout, nil, send)
	out.sent = sent
	// A waiting Acquire that failed also hears out whether a majority
	// answered at all, when a failure leaves it open (a master that times
	// out while another has yet to answer): it must not stay in the lines
	// when it cannot win (TestAdv4TimedOutWaiterStaysInLine). This costs
	// only attempts that failed with a master failing. Any attempt that
	// lost also hears out the masters still to answer while they decide
	// what it lost to: another holder (ErrLocked) or masters failing
	// (ErrNoQuorum). One master held and one down of three is either,
	// until the third answers (TestTryAcquireHeldWithMasterDown).
	for hearMore(tally, keep) {
		record(<-replies)
	}
	out.tally = tally
	if out.behind && out.first && out.place0 > out.place {
		// Master 0 says an earlier waiter is first, but it ranks us at a
		// later place than another master gave us (our acquire reached it
		// later), and that master put us first in its line: master 0
		// compared a stale rank. Sleeping through releases, we would not
		// carry our place to master 0 before our backoff ends, while the
		// one it puts first can never win the masters where we are first:
		// nobody would take the lock. Try again at once, with our place:
		// master 0 moves us up, and its next answer says truly whether we
		// are behind (TestWaiterRankedLateOnMasterZeroTakesTheLock).
		out.wait = keptRetryDelay
	}
	nGranted, nHeld, nAnswered := tally.Granted(), tally.Refused(), n-tally.Pending()
	late := heardLate{to: a.late, heard: out.place, behind: out.behind}

	qerr := func() *QuorumError {
		return &QuorumError{Op: "acquire", Name: req.name, Granted: nGranted, Held: nHeld, Needed: c.quorum, Errs: errs}
	}
	if tally.Won() {
		l, err := c.handOut(ctx, req, a, t, call, start, won{state, counters, replies, tally})
		if err == nil {
			return l, verdict{}, nil
		}
		if errors.Is(err, errExpired) {
			e := qerr()
			e.Expired = true
			err = e
		}
		// The lease was never handed out: take back everything, including
		// from the masters still to answer, once they have.
		c.takeBack(req, value, state, replies, n-nAnswered, late)
		return nil, out, err
	}
	if keep && state[0] == granted && tally.Reached() {
		// We won master 0: the tie-break, and the head of its waiting
		// list. Keep our keys and let the caller retry, with a new value
		// that may replace this one's keys; rivals that lost master 0
		// delete theirs, so the next round is ours once the lock is free
		// (see acquire.go). Not when too few masters answered: no split
		// vote is to be broken then, and our key would only stand in the
		// others' way. Stragglers may still set this value where it was
		// not granted: the caller deletes it everywhere once its next
		// attempt has returned.
		out.kept = true
		return nil, out, qerr()
	}
	c.takeBack(req, value, state, replies, n-nAnswered, late)
	return nil, out, qerr()
}

// hearMore reports whether an attempt whose answers so far are t reads
// another (see attempt): keep is set for a waiting Acquire.
func hearMore(t quorum.Tally, keep bool) bool {
	return !t.Decided() || keep && !t.Won() && !t.ReachKnown() || lossUnexplained(t)
}

// lossUnexplained reports whether an attempt that t says has lost could
// still be either Locked (another holder kept it from a majority) or not
// (too many masters failed), depending on the masters still to answer:
// it is not Locked yet, and would be if they all refused. (Not Reached
// is no answer: with 4 masters, 1 refusal and 2 failures, a second
// refusal makes it Locked, as refusals alone put a majority out of reach.)
func lossUnexplained(t quorum.Tally) bool {
	if !t.Lost() || t.Locked() || t.Pending() == 0 {
		return false
	}
	n, q, r, p := t.Masters(), t.Needed(), t.Refused(), t.Pending()
	return r+p > n-q || t.Granted()+r+p >= q
}

// acquireSender returns what sends acquire.lua with keys and args to one
// master. When the master lost its scripts (a restart) it loads the
// script and sends it again. Safe here, unlike a fallback hidden in
// rueidis: every later command for this value waits for this goroutine's
// answer first (the attempt's clean-up, or the lease's settle).
func (c *Client) acquireSender(keys, args []string) func(context.Context, int, rueidis.Client) rueidis.RedisResult {
	return func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		res := c.execAcquire(ctx, node, rc, keys, args, false)
		if err, ok := rueidis.IsRedisErr(res.Error()); !ok || !err.IsNoScript() {
			return res
		}
		if err := script.Acquire.Load(ctx, rc); err != nil {
			// Say why, not NOSCRIPT: an ACL without SCRIPT LOAD
			// answers NOPERM (node.go, loadError).
			return rueidis.NewErrorResult(loadError(err))
		}
		// In a Cluster, Load reaches the nodes rueidis listed at its last
		// refresh of the Cluster's map, not always the one that answered
		// (a replica promoted since, reached through MOVED): EVAL, which
		// caches the script there too.
		return c.execAcquire(ctx, node, rc, keys, args, rc.Mode() == rueidis.ClientModeCluster)
	}
}

// execAcquire sends acquire.lua by its digest (EVALSHA), or whole (EVAL)
// when eval; under FenceReplicas followed by WAIT, as a grant counts only
// once replicas have its counter (replicas.go).
func (c *Client) execAcquire(ctx context.Context, node int, rc rueidis.Client, keys, args []string, eval bool) rueidis.RedisResult {
	switch {
	case c.cfg.fenceReplicas > 0:
		return c.execFenced(ctx, node, rc, script.Acquire, keys, args, eval, "", acquireGranted)
	case eval:
		return script.Acquire.ExecEval(ctx, rc, keys, args)
	default:
		return script.Acquire.ExecLoaded(ctx, rc, keys, args)
	}
}

// won is what a winning attempt heard: each master's grant state and
// counter, the answers still to come, and the tally.
type won struct {
	state    []int
	counters []int64
	replies  <-chan reply
	tally    quorum.Tally
}

// errExpired: the attempt's validity ran out before its token was drawn.
var errExpired = errors.New("validity ran out")

// handOut makes the lease of attempt a, which a majority granted: it draws
// the token, starts the lease and its renewal, and leaves the waiting
// lists. It returns errExpired when validity ran out first, ErrClosed
// when Close has begun, or fence's error; the caller then takes the keys
// back.
func (c *Client) handOut(ctx context.Context, req *request, a try, t *turn, call *acquireCall, start time.Time, w won) (*Lease, error) {
	validUntil := start.Add(req.ttl - c.drift(req.ttl))
	token, err := c.fence(ctx, req, w.counters, validUntil)
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(validUntil) {
		return nil, errExpired
	}
	keep := a.waiter != ""
	l := newLease(c, req, a.value, token, start, t)
	l.waiter = a.waiter
	// We may be in waiting lists (an attempt of ours was refused
	// somewhere, or had an unknown outcome, this one or an earlier):
	// leave them, or our place would block the next in line until it
	// lapsed.
	leave := keep && (call.attempts > 1 || w.tally.Granted() < len(w.state)-w.tally.Pending())
	l.answers(w.state, w.replies, w.tally.Pending(), nil) // strayAcquire

	if !c.track(l) {
		return nil, ErrClosed
	}
	l.start(c.now() + int64(req.ttl/3))
	if leave {
		// Now: the masters that answered ran our acquire; one still to
		// answer that refuses us is left when it answers (settle), above.
		c.leave(req, a.waiter, nil, true)
	}
	return l, nil
}

// strayAcquire reports whether res, a straggler's answer to the acquire
// that made l (handOut), granted it. A straggler that refused a waiting
// Acquire put it in its line: it leaves again, after that answer (the
// leave handOut sent may have reached that master first).
func (l *Lease) strayAcquire(res rueidis.RedisResult) bool {
	ok, _, _ := parseAcquire(res)
	if !ok && l.waiter != "" {
		l.c.leave(l.req, l.waiter, nil, true)
	}
	return ok
}

// acquireGranted reports whether res is acquire.lua's grant (which drew a
// counter).
func acquireGranted(res rueidis.RedisResult) bool {
	ok, _, err := parseAcquire(res)
	return ok && err == nil
}

// parseAcquire reads acquire.lua's reply: whether it
// granted, and the reply's numbers ({1, counter} or {0, pttl[, behind,
// lapse]}).
func parseAcquire(res rueidis.RedisResult) (bool, []int64, error) {
	v, err := res.AsIntSlice()
	if err != nil || len(v) < 2 {
		return false, nil, fmt.Errorf("unexpected reply to acquire: %v", res)
	}
	return v[0] == 1, v, nil
}
