package distlock

import (
	"context"
	"strconv"
	"time"

	"github.com/distlock/distlock/internal/script"
	"github.com/redis/rueidis"
)

// Cleaning up after attempts: deleting and burying the values of attempts
// that failed or kept their keys, and leaving the waiting lists.

// takeBack cleans up after a failed attempt, in the background: the value
// is never used again, so a delete that is late or out of order can only
// remove this attempt's own keys.
func (c *Client) takeBack(req *request, value string, state []int, replies <-chan reply, pending int, late heardLate) {
	c.spawn(func() { c.cleanup(req, value, state, replies, pending, late) })
}

// drop deletes value's keys from every master, in the background: the
// value of an attempt that kept its keys, once the next attempt has
// returned (which replaced them where it was granted), or when the
// Acquire gives up. Stragglers may still set it anywhere.
func (c *Client) drop(req *request, value string) {
	state := make([]int, len(c.nodes))
	for i := range state {
		state[i] = failed // unknown: stragglers may still set value
	}
	c.spawn(func() { c.cleanup(req, value, state, nil, 0, heardLate{}) })
}

// leave takes a waiting Acquire's id off every master's waiting list, in
// the background, once after is closed (nil: at once): after an attempt's
// verdict.sent, so that an acquire of that attempt still on its way
// cannot put the waiter back in a line after it left
// (TestWaitListGiveUpLeaves, under load). When done (the Acquire won or
// gave up), the masters also record that the waiter has finished, for
// tombLife: an acquire of it delivered later still, over a connection
// rueidis has replaced, does not register it again
// (TestAdv4LateAcquireRegistersGhostAfterLeave).
func (c *Client) leave(req *request, waiter string, after <-chan struct{}, done bool) {
	c.spawn(func() {
		if after != nil {
			<-after
		}
		ctx, cancel := context.WithTimeout(c.bg, req.ttl)
		defer cancel()
		fin := "0"
		if done {
			fin = "1"
		}
		keys := []string{req.waitKey, req.lapseKey, req.key, req.leftKey}
		args := []string{waiter, fin, strconv.FormatInt(tombLife(req.ttl).Milliseconds(), 10)}
		replies, count := c.fanout(ctx, req.timeout, nil, func(ctx context.Context, _ int, rc rueidis.Client) rueidis.RedisResult {
			return script.Leave.Exec(ctx, rc, keys, args)
		})
		for range count {
			<-replies
		}
	})
}

// cleanup deletes value's key from every master whose state is granted or
// failed, after first waiting for the pending ones still to answer on
// replies. It runs after the caller has returned, with a fresh context:
// the caller's may be cancelled, and keys left behind would block the lock
// for a whole TTL. Deletion is ordered after the acquire on each master
// because each master has one connection and commands go out in order.
// Each place in line among the refusals it reads goes to late.to (when
// not nil): a waiting Acquire's next attempt carries the earliest.
func (c *Client) cleanup(req *request, value string, state []int, replies <-chan reply, pending int, late heardLate) {
	for ; pending > 0; pending-- {
		r := <-replies
		if r.err != nil {
			state[r.node] = failed
			continue
		}
		ok, v, err := parseAcquire(r.res)
		switch {
		case ok:
			state[r.node] = granted
		case err == nil && late.to != nil && len(v) >= 5 && v[4] > 0:
			// A place in line this master gave the waiter: its next
			// attempt carries it (TestWaiterLearnsPlaceFromLateAnswer).
			late.to.take(v[4], late.heard, late.behind)
		}
	}
	// Past the TTL every key we set has expired by itself.
	ctx, cancel := context.WithTimeout(c.bg, req.ttl)
	defer cancel()
	if mine, some := mark(state, func(s int) bool { return s == granted }); some {
		c.deleteKey(ctx, req.key, value, req.timeout, mine)
	}
	// A master that did not answer may still receive our acquire later:
	// over a connection rueidis has since replaced, it can arrive after
	// any delete. So where the outcome is unknown, bury the value: delete
	// its key if there is one, and leave a tombstone that refuses the
	// acquire if it comes (TestAdvLateAcquireAfterCleanup).
	if unknown, some := mark(state, func(s int) bool { return s == failed }); some {
		c.bury(ctx, req, value, unknown)
	}
}

// tombLife is how long bury's tombstone refuses a late acquire, at least:
// longer than the lease's TTL (a later acquire would only block the lock
// that long), and long enough for bytes of a replaced connection that TCP
// is still retransmitting.
func tombLife(ttl time.Duration) time.Duration { return max(2*ttl, time.Minute) }

// bury deletes value's key and leaves its tombstone (release.lua with
// one) on the masters marked in only, and waits for their answers.
func (c *Client) bury(ctx context.Context, req *request, value string, only []bool) {
	call := req.releaseCall(value, "", 0, true, req.ttl)
	replies, count := c.fanout(ctx, req.timeout, only, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		return script.Release.Exec(ctx, rc, call.Keys, call.Args)
	})
	for range count {
		<-replies
	}
}

// masked returns, for fanout, the masters whose bit is set in mask (of n),
// and whether there are any.
func masked(mask uint64, n int) ([]bool, bool) {
	only := make([]bool, n)
	for i := range only {
		only[i] = mask&(1<<i) != 0
	}
	return only, mask != 0
}

// mark returns, for fanout, the masters whose state satisfies is, and
// whether there are any.
func mark(state []int, is func(int) bool) ([]bool, bool) {
	only := make([]bool, len(state))
	some := false
	for i, s := range state {
		only[i] = is(s)
		some = some || only[i]
	}
	return only, some
}

// deleteKey runs the release script for key and value on the masters
// marked in only (every master when only is nil), waits for their answers,
// and returns how many confirmed that the key no longer holds value, and
// each master's error (nil where it confirmed).
func (c *Client) deleteKey(ctx context.Context, key, value string, timeout time.Duration, only []bool) (int, []error) {
	keys, args := []string{key}, []string{value}
	replies, count := c.fanout(ctx, timeout, only, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		return script.Release.Exec(ctx, rc, keys, args)
	})
	errs := make([]error, len(c.nodes))
	ok := 0
	for range count {
		r := <-replies
		if r.err != nil {
			errs[r.node] = r.err
			continue
		}
		ok++
	}
	return ok, errs
}
