package distlock

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/distlock/distlock/internal/quorum"
)

// Client takes locks over a fixed set of Redis masters. One Client serves
// any number of goroutines and lock names; create one per process and share
// it (it is the Python distlock's DistLockFactory). All methods are safe for
// concurrent use.
type Client struct {
	cfg    *settings
	nodes  []*node
	quorum int
	all    uint64    // a bit per master, master i's is 1<<i
	epoch  time.Time // origin of now: lease validity is kept on the monotonic clock

	waitTTLArg    string // how long a waiter's place in line lasts unrenewed, ms
	defaultTTLArg string // Config.TTL in whole ms, as the scripts take it (ttlArg)

	queue   localQueue
	renewer *renewer
	backlog backlog // late renewals hold new acquires back (backlog.go)
	reaper  reaper
	watches *watchHub
	events  *keyEvents // nil when Config.DisableLossEvents
	tel     telemetry  // spans, metrics and logs (telemetry.go)

	// stop is closed by Close; background loops (dialling, renewal) end on
	// it, and bg, the context of background commands, is cancelled.
	stop     chan struct{}
	stopping context.Context // done when stop closes
	stopNow  context.CancelFunc
	bg       context.Context
	cancelBg context.CancelFunc

	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu     sync.RWMutex // guards closed and leases
	closed bool
	leases map[*Lease]struct{} // every lease not yet ended

	// wg counts every goroutine the Client starts and every call in
	// progress, so that Close can wait for all of them. Add is called only
	// while closed is false under mu, or from a goroutine already counted.
	wg sync.WaitGroup

	// The masters' servers by run_id (claimServer): two addresses of one
	// server that no spelling tells apart (a DNS alias, a proxy).
	serversMu sync.Mutex // alone: guards servers and sameServer
	servers   map[string]int
	// sameServer is the first such pair found before New returned: its
	// error. newDone: New has returned (a pair found later is logged).
	sameServer error
	newDone    bool
}

// claimServer returns master i's node.claim: it records the run_id of
// master i's server at its first dial, and fails, while New has not
// returned, when another master is the same server: two masters on one
// server let that server alone make a majority, and New refuses such a
// configuration (TestSameServerBehindProxyRefused). After New returned
// it logs the pair as an error and lets the master connect: the run_ids
// recorded are those of each master's first dial, and a server restarted
// since (a new run_id) or a name moved to another server (a VIP) would
// make the record wrong either way, so refusing a master then could
// leave a good one out for good.
func (c *Client) claimServer(i int) func(runID string) error {
	return func(runID string) error {
		c.serversMu.Lock()
		defer c.serversMu.Unlock()
		if j, ok := c.servers[runID]; ok && j != i {
			lo, hi := min(i, j), max(i, j)
			err := fmt.Errorf("masters %d and %d (%s, %s) are one server (the same run_id); each must be a separate, independent server", lo, hi, c.cfg.addrs[lo], c.cfg.addrs[hi])
			if !c.newDone {
				if c.sameServer == nil {
					c.sameServer = err
				}
				return err
			}
			c.tel.log.Error("distlock: two masters are one server: a lock counted on both needs one server less than a majority; fix Config.Nodes", "error", err.Error())
			return nil
		}
		c.servers[runID] = i
		return nil
	}
}

// New returns a Client for the masters cfg names. It connects to all of
// them at once and returns as soon as a majority has answered; masters that
// are down are dialled again in the background. It fails when cfg is invalid
// or when no master at all could be reached (the error is then a
// *DialError, which wraps ErrNoQuorum and each master's error).
func New(cfg Config) (*Client, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     s,
		quorum:  quorum.Majority(len(s.nodes)),
		all:     ^uint64(0) >> (64 - len(s.nodes)),
		epoch:   time.Now(),
		stop:    make(chan struct{}),
		leases:  make(map[*Lease]struct{}),
		servers: make(map[string]int),
	}
	if c.tel, err = newTelemetry(&cfg, c.held); err != nil {
		return nil, fmt.Errorf("distlock: Config.MeterProvider: %w", err)
	}
	c.bg, c.cancelBg = context.WithCancel(context.Background())
	c.stopping, c.stopNow = context.WithCancel(context.Background())
	// A waiter renews its place at every attempt, at least every
	// RetryMaxDelay; one that vanished keeps it this long at most.
	c.waitTTLArg = strconv.FormatInt(max(time.Second, 4*s.retryMaxDelay).Milliseconds(), 10)
	c.defaultTTLArg = strconv.FormatInt(s.ttl.Milliseconds(), 10)
	c.queue.slots = make(map[string]*slot)
	if !s.disableLossEvents {
		c.events = newKeyEvents(c, len(s.nodes))
	}
	first := make(chan error, len(s.nodes))
	for i, opt := range s.nodes {
		if c.events != nil {
			opt = c.events.arm(i, opt, s.prefix)
		}
		n := &node{index: i, addr: s.addrs[i], opt: opt, log: c.tel.log}
		if c.events != nil {
			n.untracked = func() { c.events.untracked(i) }
		}
		n.claim = c.claimServer(i)
		c.nodes = append(c.nodes, n)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			n.dial(c.stop, first)
		}()
	}
	// Wait for every master's first answer, but once a majority is
	// connected, only briefly for the rest: a master that is paused or
	// unroutable would otherwise hold New for the whole dial timeout.
	dials := quorum.NewTally(len(c.nodes))
	var grace <-chan time.Time
wait:
	for dials.Pending() > 0 {
		select {
		case err := <-first:
			if err == nil {
				dials.Grant()
			} else {
				dials.Fail()
			}
		case <-grace:
			break wait
		}
		if dials.Won() && grace == nil {
			t := time.NewTimer(newGrace)
			defer t.Stop()
			grace = t.C
		}
	}
	// Not the majority rule: New needs one master, and dials the others
	// again in the background.
	if dials.Granted() == 0 {
		de := &DialError{Errs: make([]*NodeError, len(c.nodes))}
		for i, n := range c.nodes {
			_, err := n.get()
			if err == nil { // connected since: New counted its first answer a failure
				err = errNotConnected
			}
			de.Errs[i] = &NodeError{Addr: n.addr, Err: err}
		}
		c.shutdown()
		c.tel.close()
		return nil, de
	}
	c.serversMu.Lock()
	same := c.sameServer
	c.newDone = true
	c.serversMu.Unlock()
	if same != nil {
		// Found while New waited: a configuration error, as two
		// spellings of one address are (checkMasters). Found later, it
		// is logged (claimServer).
		c.shutdown()
		c.tel.close()
		return nil, fmt.Errorf("distlock: %w", same)
	}
	c.renewer = newRenewer(c)
	c.backlog.c = c
	c.watches = newWatchHub(c)
	if c.events != nil {
		c.events.watches.Store(c.watches)
		for i := range c.nodes {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.events.run(i)
			}()
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.renewer.run()
	}()
	return c, nil
}

// Close releases every lease the Client holds (their Done channels close and
// Err reports ErrReleased and ErrClosed), stops renewals, waits for the
// Client's goroutines to end and closes its connections. Calls in progress
// end with ErrClosed. After Close every method returns ErrClosed. Close
// returns an error when some released lease's keys could not be deleted on
// a majority of masters (they expire with their TTL): it names them, up to
// three, and wraps the last one's *QuorumError
// (TestCloseErrorCountsAnsweringMasters). Masters that do not
// answer make Close take longer, seconds at worst: it waits for their
// answers within the per-master and dial timeouts. A second Close returns
// nil at once, even while the first is still running.
//
// Close does not wait for the work done under those leases, the functions
// Do runs included: their contexts are cancelled, but the lock is free at
// once, and another Client may take it while that work finishes. For a
// graceful shutdown, stop the workers and wait for them first; their
// storage should refuse stale fencing tokens either way
// (TestCloseDoesNotWaitForDo).
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	leases := make([]*Lease, 0, len(c.leases))
	for l := range c.leases {
		leases = append(leases, l)
	}
	c.mu.Unlock()
	// Stop first: waiters, renewals and background loops end, so that no
	// waiter takes a slot that the leases below free.
	close(c.stop)
	c.stopNow()

	var err error
	ended := leases[:0]
	for _, l := range leases {
		if l.end(errClosedLease) {
			ended = append(ended, l)
		}
	}
	if len(ended) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.dialTimeout, 5*time.Second))
		err = c.releaseAll(ctx, c.cfg.dialTimeout, ended)
		cancel()
		for _, l := range ended {
			l.freeSlot()
		}
	}
	c.watches.closeAll()
	c.shutdown()
	c.tel.close()
	if err != nil {
		c.tel.log.Warn("distlock: Close could not release every lease; their keys expire with their TTL", "error", err.Error())
	}
	return err
}

// shutdown stops the background goroutines, waits for them, and closes
// the connections.
func (c *Client) shutdown() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		c.stopNow()
	}
	// Clean-ups still running finish first (each is bounded by per-master
	// timeouts); only then is their context cancelled.
	c.wg.Wait()
	c.cancelBg()
	for _, n := range c.nodes {
		if rc := n.client.Load(); rc != nil {
			(*rc).Close()
		}
	}
}

// newGrace is how long New waits for the last masters once a majority is
// connected.
const newGrace = 250 * time.Millisecond

// errClosedLease is the Err of a lease that Close released.
var errClosedLease = fmt.Errorf("%w: %w", ErrReleased, ErrClosed)

// enter registers a call in progress; it fails once Close has begun.
// Every exported method that sends commands calls it and defers exit.
func (c *Client) enter() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	c.wg.Add(1)
	return nil
}

func (c *Client) exit() { c.wg.Done() }

// spawn runs f in a goroutine that Close waits for. The caller must be a
// call between enter and exit, or a goroutine already counted.
func (c *Client) spawn(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// trySpawn is spawn for callers that are not counted (timer callbacks):
// it starts nothing and returns false once Close has begun.
func (c *Client) trySpawn(f func()) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	c.spawn(f)
	return true
}

// now returns the time on the Client's monotonic clock, in ns since epoch.
func (c *Client) now() int64 { return int64(time.Since(c.epoch)) }

// at converts a time.Time read in this process to the monotonic clock of now.
func (c *Client) at(t time.Time) int64 { return int64(t.Sub(c.epoch)) }

// nodeTimeout is the per-master timeout for commands of a lease with ttl.
func (c *Client) nodeTimeout(ttl time.Duration) time.Duration {
	if c.cfg.nodeTimeout > 0 {
		return c.cfg.nodeTimeout
	}
	return min(DefaultNodeTimeout, ttl/10)
}

// drift is the clock-drift margin of a lease with ttl.
func (c *Client) drift(ttl time.Duration) time.Duration {
	return driftOf(ttl, c.cfg.driftFactor)
}

func driftOf(ttl time.Duration, factor float64) time.Duration { return quorum.Drift(ttl, factor) }

// track and forget keep c.leases, which Close releases.
func (c *Client) track(l *Lease) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.leases[l] = struct{}{}
	if c.events != nil {
		c.events.add(l)
	}
	c.mu.Unlock()
	if c.events != nil {
		c.events.readNew(l) // what changed before byKey held l
	}
	return true
}

// held reports how many leases the Client holds, for metrics.
func (c *Client) held() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return int64(len(c.leases))
}

func (c *Client) forget(l *Lease) {
	c.mu.Lock()
	_, tracked := c.leases[l]
	delete(c.leases, l)
	c.mu.Unlock()
	if tracked && c.events != nil {
		c.events.remove(l)
	}
}

// ttlArg returns ttl in whole milliseconds, as acquire.lua, handoff.lua
// and renew.lua take it: the Client's default TTL is formatted once, in
// New.
func (c *Client) ttlArg(ttl time.Duration) string {
	if ms := ttl.Milliseconds(); ms != c.cfg.ttl.Milliseconds() {
		return strconv.FormatInt(ms, 10)
	}
	return c.defaultTTLArg
}
