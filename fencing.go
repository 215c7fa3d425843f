package distlock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"

	"github.com/distlock/distlock/internal/quorum"
	"github.com/distlock/distlock/internal/script"
)

// Fencing tokens.
//
// Each master keeps fence counters; the acquire script INCRs one on every
// master that grants the lock. A lease's counter t is the largest value the
// granting masters returned. Before the lease is handed out, a majority of
// masters must hold a counter >= t. Any later holder's majority meets that
// majority on at least one master, whose INCR then returns more than t, so
// the later token is larger. The argument uses no clock: tokens keep rising
// even when mutual exclusion itself fails (a process paused past its TTL, a
// clock jump), which is exactly when storage needs them.
//
// Usually a majority returned t itself and nothing more is sent (one round
// trip in all). Otherwise counters have drifted apart (a master restarted
// empty, or was down while others granted) and t is written back:
// counter = max(counter, t) on every master, and a majority must confirm
// (two round trips; the lease's validity still counts from the first).
// Writing to every master, not only a majority, heals the drift for the
// next acquire.
//
// A released key leaves its counter behind. The argument needs a later
// holder to INCR on a master of that majority after t was written there.
// A later acquire can be granted on such a master early, before the
// write-back reached it (a master that did not grant the lease), and on
// another master late, after the lease's key left it. If that other
// master granted the lease at a lower counter and its write-back is still
// on its way (sent from a goroutine of its own, which the lease does not
// wait for once a majority holds t; or left in a replaced connection),
// neither master gives the later acquire more than t. So no master that
// a lease's key leaves keeps a counter below the lease's: release.lua
// raises the counter to it as it deletes, and an acquire that takes over
// a key still holding a value this Client has just released (replaced)
// draws above that lease's counter (acquire.lua ARGV[8]).
// TestAdv18ReleaseOvertakesWriteBack is the interleaving. A key can also
// leave by expiring, its write-back and release lost (the lease cut off
// from that master): an acquire would then have to be granted on one
// master before the lease was handed out and on another after the key
// expired there, an attempt of at least the TTL less the time from the
// key's write to the lease's handout: two per-master timeouts for an
// acquire and its write-back, three for a local handoff (whose round on a
// master still answering the previous lease's acquire waits for that
// answer, then for its own; TestAdv19HandoffHandoutThreeTimeouts). The
// attempt's own per-master timeout ends it sooner as long as every
// per-master timeout used on the name is under a quarter of every TTL
// used on it, Extend's included (the defaults: a tenth). Past that (a
// Client with a long timeout beside a short WithTTL or Extend), such a
// holder can get a lower token than a lease handed out, and ended, before
// it: a store then refuses its writes. The promise that holds under every fault but a lost
// counter is the one above: an Acquire begun after a lease was handed out
// gets a larger token.
//
// The token is t<<nodeBits | m, where m is the lowest-numbered master that
// returned t. One master's INCR never returns the same value twice, so two
// leases that overlap (only possible when exclusion already failed) still
// get different tokens, and storage that accepts only increasing tokens
// lets at most one of them write.
//
// Counters are per hash slot of the lock key, not per name: 16384 of them
// per key prefix at most, however many names are used, and in the lock
// key's slot so that one script can touch both even on a Redis Cluster.
// A name's tokens therefore rise by more than one when other names share
// its slot; they only ever rise.
//
// What breaks it: a master that loses its counters (restart without
// appendfsync always, failover to a replica that lagged, eviction, FLUSHALL)
// can let a majority that includes it return a token that is not larger.
// Run masters with appendonly yes, appendfsync always and maxmemory-policy
// noeviction.

// nodeBits is how many low bits of a token name the master it came from.
const nodeBits = 6

// MaxCounter is the largest fence counter a token can carry: Lua numbers
// (doubles) hold integers exactly up to 2^53, and a token shifts the
// counter left by 6 bits. A master whose counter is outside 1..MaxCounter
// (negative, or raised beyond it by hand or by a bug) is counted as failed
// for that acquire, with an error naming the master and the key; it never
// yields a token (TestCounterOutOfRange).
const MaxCounter = 1 << 53

// A CounterError is a master's fence counter that cannot be in a token:
// outside 1..MaxCounter. The master answered; it counts as failed for
// that acquire (in a QuorumError's Errs, inside a NodeError), and Status
// reports it as MasterStatus.FenceErr.
type CounterError struct {
	Key     string // the fence counter's key
	Counter int64
}

func (e *CounterError) Error() string {
	return fmt.Sprintf("fence counter %s is %d, outside 1..2^53: fix or delete it (tokens from it would not rise)", e.Key, e.Counter)
}

// counterNotInteger explains err, a master's answer to acquire.lua, when
// it is the script's INCR refusing the fence counter at key: another
// program left a value there that is not an integer (Redis answers "value
// is not an integer or out of range ... @user_script:141"). Other errors
// pass through. (TestAcquireCounterNotIntegerNamed)
func counterNotInteger(err error, key string) error {
	if msg := err.Error(); !strings.Contains(msg, "value is not an integer or out of range") || !strings.Contains(msg, "@user_script") {
		return err
	}
	explain := func(err error) error {
		return fmt.Errorf("fence counter %s is not an integer (another program's value?): fix or delete it; this master refuses every acquire until then (%w)", key, err)
	}
	var ne *NodeError
	if errors.As(err, &ne) {
		return &NodeError{Addr: ne.Addr, Err: explain(ne.Err)}
	}
	return explain(err)
}

// checkCounter reports why counter, read from key, cannot be in a token.
func checkCounter(counter int64, key string) error {
	if counter < 1 || counter > MaxCounter {
		return &CounterError{Key: key, Counter: counter}
	}
	return nil
}

// token encodes a counter and the master that returned it.
func token(counter int64, node int) uint64 { return uint64(counter)<<nodeBits | uint64(node) }

// counter returns the fence counter l's token carries.
func (l *Lease) counter() int64 { return int64(l.token >> nodeBits) }

// replaced returns l as the next acquire of its name takes it, once it ended.
func (l *Lease) replaced() replaced { return replaced{l.value, l.counter()} }

// fence returns the fencing token for a lease that the masters with a
// counter > 0 granted, writing the counter back where fewer than a majority
// returned it. validUntil bounds the write-back.
func (c *Client) fence(ctx context.Context, req *request, counters []int64, validUntil time.Time) (uint64, error) {
	var t int64
	first := -1
	for i, v := range counters {
		if v > t {
			t, first = v, i
		}
	}
	// A master known to hold a counter >= t grants; the others are yet
	// to answer the write-back.
	hold := make([]bool, len(counters))
	tally := quorum.NewTally(len(counters))
	for i, v := range counters {
		if v == t {
			hold[i] = true
			tally.Grant()
		}
	}
	if tally.Won() {
		return token(t, first), nil
	}
	return c.writeBack(ctx, req, t, first, hold, tally, validUntil)
}

// writeBack writes counter t to the masters not marked in hold (tally
// counts those marked as granting, and the others as pending), and
// returns the token once a majority holds it.
func (c *Client) writeBack(ctx context.Context, req *request, t int64, first int, hold []bool, tally quorum.Tally, validUntil time.Time) (_ uint64, err error) {
	ctx, span := c.tel.start(ctx, spanFence, req.name)
	if span != nil {
		span.SetAttributes(attribute.Int64("distlock.fence.counter", t), attribute.Int("distlock.masters.holding", tally.Granted()))
	}
	errs := make([]error, len(hold))
	defer func() {
		c.wroteBack(ctx, err)
		c.recordMasterErrors(span, errs)
		end(span, err)
	}()
	timeout := min(req.timeout, time.Until(validUntil))
	if timeout <= 0 {
		return 0, &QuorumError{Op: "fence", Name: req.name, Granted: tally.Granted(), Needed: tally.Needed(), Expired: true, Errs: errs}
	}
	keys, args := []string{req.fenceKey}, []string{strconv.FormatInt(t, 10)}
	only := make([]bool, len(hold))
	for i := range only {
		only[i] = !hold[i]
	}
	replies, _ := c.fanout(ctx, timeout, only, func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult {
		// With FenceReplicas, INCRBY 0 makes WAIT cover the counter even
		// where the script found it high enough and wrote nothing
		// (replicas.go).
		return c.execCounter(ctx, node, rc, script.Fence, keys, args, req.fenceKey, func(rueidis.RedisResult) bool { return true })
	})
	for !tally.Decided() {
		r := <-replies
		if r.err != nil {
			errs[r.node] = r.err
			tally.Fail()
			continue
		}
		if v, err := r.res.AsInt64(); err != nil || v < t {
			errs[r.node] = &NodeError{Addr: c.nodes[r.node].addr, Err: fmt.Errorf("unexpected reply to fence write-back: %v", r.res)}
			tally.Fail()
			continue
		}
		hold[r.node] = true
		tally.Grant()
	}
	if !tally.Won() {
		return 0, &QuorumError{Op: "fence", Name: req.name, Granted: tally.Granted(), Needed: tally.Needed(), Errs: errs}
	}
	return token(t, first), nil
}
