package distlock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"golang.org/x/sync/errgroup"
)

// A lease hears about its own keys (docs/design.md, "Loss events").
//
// Every master's connection tracks the lock keys in broadcast mode
// (CLIENT TRACKING ON BCAST PREFIX <KeyPrefix>): the master sends the
// Client the name of every lock key that was changed or deleted, or that
// expired, within one turn of its event loop, by any connection, this
// one included. The message says that a key changed, not how: so a lease
// whose key changed on a master reads it there (GET), unless the message
// is the echo of the lease's own acquire or renewal (lease_echo.go).
// Another value, or none, counts as a renewal's "gone or taken" answer does
// (Lease.goneLocked): once so many masters report it that no majority
// holds the lease, the lease is lost at once, without waiting for its next
// renewal. A flush (FLUSHDB, FLUSHALL) changes every key, and a connection
// lost may have missed changes: then every lease is read again on that
// master, as soon as it answers.
//
// A master that cannot track keys (a Sentinel group, a server without
// RESP3, an ACL without CLIENT TRACKING; or Config.DisableLossEvents)
// sends nothing: a loss there is found by the renewals alone.

// keyEvents routes the masters' key-change messages to the leases.
type keyEvents struct {
	c *Client

	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu,
	// keyEvents.mu; watchHub.mu → masterWatch.mu; node.faultMu alone. The
	// masters' callbacks take keyEvents.mu alone.
	mu    sync.Mutex          // guards byKey, check, pending, echo, late, and each tracked Lease's renewCounting and renewCount
	byKey map[string][]*Lease // the leases this Client holds, by lock key
	check []keyCheck          // per master: what to read there
	// echo marks, per key, the masters where the message of the lease's
	// own acquire (or handoff) write is still to come (readNew): that
	// message says nothing new.
	echo map[string]uint64
	// late counts, per lease, the messages from masters that had yet to
	// answer its acquire when it was tracked (readNew): once the answers
	// are in, a grant's own message is not read (settledLate).
	late map[*Lease]*lateCount
	// pending counts, per master, the messages naming a key that an
	// acquire attempt or a handoff of this Client is about to hold, from
	// the moment it begins until its lease joins byKey (readNew).
	pending map[string]*[MaxNodes]uint8
	// silent marks the masters that send no messages (they refused
	// tracking, or are Sentinel groups): their counts say nothing.
	silent uint64

	// reading counts the masters whose leases are being read (run): the
	// reaper waits for them (batch.go, reapWait).
	reading atomic.Int32

	// watches is the Client's watch machinery, once New has made it (the
	// masters' callbacks may run before): told of every message that
	// every key may have changed.
	watches atomic.Pointer[watchHub]
}

// keyCheck is what is to be read on one master.
type keyCheck struct {
	all  bool                // every lease: a flush, or the connection was lost
	keys map[string]struct{} // the keys of leases whose key changed
	wake chan struct{}       // buffered: a read is due
}

// eventReadBatch bounds the GETs of one read on one master, and
// eventReadsInFlight how many such reads one master has in flight: with
// 100,000 leases to read again after a flush, 100 batches would otherwise
// go out at once, ahead of the renewals on the same connection.
const (
	eventReadBatch     = 1000
	eventReadsInFlight = 4
)

func newKeyEvents(c *Client, masters int) *keyEvents {
	e := &keyEvents{c: c, byKey: make(map[string][]*Lease), check: make([]keyCheck, masters), pending: make(map[string]*[MaxNodes]uint8), echo: make(map[string]uint64), late: make(map[*Lease]*lateCount)}
	for i := range e.check {
		e.check[i] = keyCheck{keys: make(map[string]struct{}), wake: make(chan struct{}, 1)}
	}
	return e
}

// arm returns o set up to send master i's key-change messages to e: lock
// keys are those under prefix. A Sentinel group's connections include the
// sentinels', which do not track keys: it is left as it is.
func (e *keyEvents) arm(i int, o rueidis.ClientOption, prefix string) rueidis.ClientOption {
	if o.Sentinel.MasterSet != "" {
		e.untracked(i)
		return o
	}
	o.DisableCache = false // tracking needs it; distlock never uses DoCache
	// Not NOLOOP: readNew counts on the echo of the Client's own writes,
	// which Redis 7.0 sends for scripts even with NOLOOP, and a later
	// version might not.
	o.ClientTrackingOptions = []string{"BCAST", "PREFIX", prefix}
	o.OnInvalidations = func(keys []rueidis.RedisMessage) { e.changed(i, keys) }
	return o
}

// untracked records that master i sends no key-change messages.
func (e *keyEvents) untracked(i int) {
	e.mu.Lock()
	e.silent |= 1 << i
	e.mu.Unlock()
}

// tracks reports whether master i's connections are opened with key
// tracking on.
func (e *keyEvents) tracks(i int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.silent&(1<<i) == 0
}

// Only the master's pipelined connection may track keys. rueidis opens
// every connection to a master with the same options, and sends the
// messages of each to the same callback: a connection of its own (a Watch
// session's, or the pooled one Config.FenceReplicas's WAIT goes on) would
// make every message count twice, and every renewal's echo read the key
// back. Holding 100,000 leases, those reads outran the renewals and leases
// were lost (BenchmarkHold in benchmarks/, issue 16) once one Acquire had
// waited. Such a connection turns tracking off (untrack) in its first
// round trip; a message it got before that is counted once more, which
// costs a read, never a change missed (TestOnlyPipelinedConnectionTracks).

// untrack returns CLIENT TRACKING OFF, to send first on a connection of
// master i other than its pipelined one; false when that master's
// connections do not track keys.
func (c *Client) untrack(i int, b rueidis.Builder) (rueidis.Completed, bool) {
	if c.events == nil || !c.events.tracks(i) {
		return rueidis.Completed{}, false
	}
	return b.ClientTracking().Off().Build(), true
}

// disarm returns o without key tracking, for a master that refused it.
func disarm(o rueidis.ClientOption) rueidis.ClientOption {
	o.DisableCache = true
	o.ClientTrackingOptions = nil
	o.OnInvalidations = nil
	return o
}

// refusedTracking reports whether err, from connecting with o, says the
// master cannot track keys: no RESP3, or CLIENT TRACKING refused.
func refusedTracking(o rueidis.ClientOption, err error) bool {
	if o.DisableCache || err == nil {
		return false
	}
	return errors.Is(err, rueidis.ErrNoCache) || strings.Contains(strings.ToLower(err.Error()), "tracking")
}

// changed is master i's callback: keys changed there (nil: every key, or
// the connection was lost). It runs on the connection's reading
// goroutine, so it only notes what to read.
func (e *keyEvents) changed(i int, keys []rueidis.RedisMessage) {
	if keys != nil && allReserved(keys) {
		// Fence counters and waiting lists (a third of the messages when
		// locks change hands): no lease, acquire or echo can be waiting
		// on them, since no lock key starts like them (checkKey). Not
		// worth e.mu, which acquires and releases take too.
		return
	}
	e.mu.Lock()
	k := &e.check[i]
	due := false
	bit := uint64(1) << i
	if keys == nil {
		k.all = len(e.byKey) > 0
		due = k.all
		for _, n := range e.pending {
			n[i] = 2 // anything may have changed: read it
		}
		for key, b := range e.echo {
			e.unecho(key, b, bit) // a new connection sends no echo of the old one's writes
		}
		for _, lc := range e.late {
			lc.n[i] = 2
		}
		for _, ls := range e.byKey {
			for _, l := range ls {
				if l.renewCounting&bit != 0 {
					l.renewCount[i] = 2
				}
			}
		}
	}
	for _, m := range keys {
		key, err := m.ToString()
		if err != nil {
			continue
		}
		if n := e.pending[key]; n != nil && n[i] < 255 {
			n[i]++
		}
		ls := e.byKey[key]
		if len(ls) == 0 || releasing(ls) {
			continue // a lease being released is left alone (readableOn)
		}
		if e.deferred(ls, i) {
			continue // perhaps the lease's own write: judged once its answer is in
		}
		if b := e.echo[key]; b&bit != 0 {
			e.unecho(key, b, bit) // the lease's own write: nothing new
			continue
		}
		k.keys[key] = struct{}{}
		due = true
	}
	e.mu.Unlock()
	if due {
		e.poke(i)
	}
	if h := e.watches.Load(); keys == nil && h != nil {
		// Watches read their keys there again: a flush publishes nothing
		// on their channels.
		h.masters[i].rereadEverything()
	}
}

// allReserved reports whether every key in keys is one of distlock's own
// (ReservedKeyspace), never a lock key.
func allReserved(keys []rueidis.RedisMessage) bool {
	for _, m := range keys {
		key, err := m.ToString()
		if err != nil || !reservedKey(key) {
			return false
		}
	}
	return true
}

// releasing reports whether every one of ls is being released.
func releasing(ls []*Lease) bool {
	for _, l := range ls {
		if !l.releasing.Load() {
			return false
		}
	}
	return true
}

func (e *keyEvents) poke(i int) {
	select {
	case e.check[i].wake <- struct{}{}:
	default:
	}
}

// add and remove keep byKey: a lease is in it from the moment the Client
// tracks it until it ends.
func (e *keyEvents) add(l *Lease) {
	e.mu.Lock()
	e.byKey[l.req.key] = append(e.byKey[l.req.key], l)
	e.mu.Unlock()
}

func (e *keyEvents) remove(l *Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.late, l)
	ls := e.byKey[l.req.key]
	for j, x := range ls {
		if x == l {
			ls = append(ls[:j], ls[j+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(e.byKey, l.req.key)
		delete(e.echo, l.req.key)
	} else {
		e.byKey[l.req.key] = ls
	}
}

// recheck asks for l's key to be read on master i again.
func (e *keyEvents) recheck(i int, l *Lease) {
	e.mu.Lock()
	e.markLocked(l.req.key, 1<<i)
	e.mu.Unlock()
}

// markLocked asks for key to be read on the masters in mask, if a lease
// holds it, and wakes their readers. e.mu is held (poke does not block).
func (e *keyEvents) markLocked(key string, mask uint64) {
	if _, held := e.byKey[key]; !held {
		return
	}
	for i := range e.check {
		if mask&(1<<i) != 0 {
			e.check[i].keys[key] = struct{}{}
			e.poke(i)
		}
	}
}

// take returns the leases to read on master i now, and forgets them.
func (e *keyEvents) take(i int) []*Lease {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := &e.check[i]
	var out []*Lease
	if k.all {
		for _, ls := range e.byKey {
			out = append(out, ls...)
		}
	} else {
		for key := range k.keys {
			out = append(out, e.byKey[key]...)
		}
	}
	k.all = false
	if len(k.keys) > 0 {
		// A new map, not clear: clear walks every bucket the map ever
		// grew, on each of the many small takes that follow a big one.
		k.keys = make(map[string]struct{})
	}
	return out
}

// run reads on master i what its messages ask for, until the Client
// closes. A read the master did not answer is tried again, with backoff:
// a master that comes back empty is found then.
func (e *keyEvents) run(i int) {
	c := e.c
	k := &e.check[i]
	b := redialBackoff(20*time.Millisecond, time.Second)
	var again *time.Timer
	var retry <-chan time.Time
	defer func() {
		if again != nil {
			again.Stop()
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case <-k.wake:
		case <-retry:
		}
		e.reading.Add(1)
		failed := e.read(i, e.take(i))
		e.reading.Add(-1)
		if len(failed) > 0 {
			for _, l := range failed {
				e.recheck(i, l)
			}
			select { // not at once: after the backoff, or a new message
			case <-k.wake:
			default:
			}
			if again == nil {
				again = time.NewTimer(b.NextBackOff())
			} else {
				again.Reset(b.NextBackOff())
			}
			retry = again.C
		} else {
			b.Reset()
			retry = nil
		}
	}
}

// read reads the keys of leases on master i, and reports to each lease
// what it found; it returns the leases whose key could not be read.
func (e *keyEvents) read(i int, leases []*Lease) (failed []*Lease) {
	ready := leases[:0:0]
	for _, l := range leases {
		l.settleIfIn()
		if l.readableOn(i) {
			ready = append(ready, l)
		}
	}
	switch {
	case len(ready) == 0:
		return nil
	case len(ready) <= eventReadBatch:
		return e.readPart(i, ready)
	}
	// Many at once (a flush, a connection lost, many leases' keys
	// deleted): the batches go out together, a few at a time, pipelined
	// on the master's connection, and each is judged as its answers come.
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(eventReadsInFlight)
	for lo := 0; lo < len(ready); lo += eventReadBatch {
		part := ready[lo:min(lo+eventReadBatch, len(ready))]
		g.Go(func() error {
			f := e.readPart(i, part)
			mu.Lock()
			failed = append(failed, f...)
			mu.Unlock()
			return nil // a read that failed is tried again (run)
		})
	}
	g.Wait()
	return failed
}

func (e *keyEvents) readPart(i int, leases []*Lease) (failed []*Lease) {
	c := e.c
	n := c.nodes[i]
	rc, err := n.get()
	if err != nil {
		return leases
	}
	cmds := make(rueidis.Commands, len(leases))
	var until int64
	ttl := leases[0].TTL()
	for j, l := range leases {
		cmds[j] = rc.B().Get().Key(l.req.key).Build()
		until = max(until, l.validUntil.Load())
		ttl = min(ttl, l.TTL())
	}
	// Wait as long as an answer can be of use, as renewals do: a read
	// given up on stays in the connection's pipe, so reading again after a
	// short timeout only doubles the work of a master that is behind
	// (BenchmarkHold in benchmarks/, 100,000 leases). Close cuts it short.
	ctx, cancel := context.WithTimeout(c.stopping, c.renewWait(until, ttl))
	defer cancel()
	var firstErr error
	for j, r := range rc.DoMulti(ctx, cmds...) {
		l := leases[j]
		v, err := r.ToString()
		switch {
		case rueidis.IsRedisNil(err):
			l.seenGone(i, "deleted or expired (key event)")
		case wrongType(err):
			// Another program put a value of another kind there (a hash
			// renamed onto it): taken, as by another value
			// (TestAdv14OverwrittenWithAnotherType).
			l.seenGone(i, "held by a value of another type (key event)")
		case transient(err):
			// The master cannot answer now (a slow script, still loading
			// its data): read again, as when it gave no answer
			// (TestAdv14ReadAnsweredBusy).
			failed = append(failed, l)
			if firstErr == nil {
				firstErr = err
			}
		case isRedisError(err):
			// The master refuses GET (an ACL): its renewals decide.
			if firstErr == nil {
				firstErr = err
			}
		case err != nil:
			failed = append(failed, l)
			if firstErr == nil {
				firstErr = err
			}
		case v != l.value:
			l.seenGone(i, "held by another value (key event)")
		}
	}
	if c.stopping.Err() == nil {
		n.observe(firstErr)
	}
	return failed
}

// wrongType reports whether err is a master's WRONGTYPE answer: the key
// holds a value that is not a string, so not a lease's.
func wrongType(err error) bool { return redisErrCode(err, "WRONGTYPE") }

// transient reports whether err is a master's answer that it cannot serve
// the command now, but will: BUSY (a script or function runs past its
// time limit), LOADING, MASTERDOWN, TRYAGAIN, CLUSTERDOWN.
func transient(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	return redisErrCode(err, "BUSY ") || redisErrCode(err, "MASTERDOWN") || re.IsLoading() || re.IsTryAgain() || re.IsClusterDown()
}

// redisErrCode reports whether err is an error reply from Redis whose
// text starts with code ("WRONGTYPE", "NOPERM", "BUSY ").
func redisErrCode(err error, code string) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(re.Error(), code)
}
