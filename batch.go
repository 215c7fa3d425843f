package distlock

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/quorum"
	"github.com/distlock/distlock/internal/script"
)

// noReply marks, in a batch's replies, a call that got no integer answer.
const noReply = math.MinInt64

// pipeline runs s once per call on master i as one pipeline, waiting for
// its answers up to timeout, and returns one integer reply per call
// (noReply where there was none) and the error that made any reply
// missing. Calls that time out may still run on the master: they stay in
// the connection's pipe, ahead of anything sent later.
func (c *Client) pipeline(ctx context.Context, timeout time.Duration, i int, s *script.Script, calls []rueidis.LuaExec) ([]int64, error) {
	return c.onMaster(ctx, timeout, i, len(calls), func(nctx context.Context, rc rueidis.Client, ints []int64, failed func(error)) {
		for j, r := range s.ExecMulti(nctx, rc, calls) {
			v, err := r.AsInt64()
			if err != nil {
				failed(err)
				continue
			}
			ints[j] = v
		}
	})
}

// onMaster runs send on master i's connection under timeout, to fill
// ints, n integer replies that start as noReply; send reports each reply
// that failed, and the first becomes the error returned (and observed).
func (c *Client) onMaster(ctx context.Context, timeout time.Duration, i, n int, send func(nctx context.Context, rc rueidis.Client, ints []int64, failed func(error))) ([]int64, error) {
	node := c.nodes[i]
	ints := make([]int64, n)
	for j := range ints {
		ints[j] = noReply
	}
	rc, err := node.get()
	if err != nil {
		return ints, &NodeError{Addr: node.addr, Err: err}
	}
	nctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var firstErr error
	send(nctx, rc, ints, func(err error) {
		if err != nil && firstErr == nil {
			firstErr = node.replyError(ctx, err, timeout)
		}
	})
	if ctx.Err() == nil {
		node.observe(firstErr)
	}
	return ints, firstErr
}

// replyError is the error to report for a command to n that got no
// answer (err) under a caller's ctx and distlock's own timeout.
func (n *node) replyError(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() == nil {
		err = ownTimeout(err, timeout)
	}
	return &NodeError{Addr: n.addr, Err: err}
}

// renewReplies copies renew.lua's answers in r, one per key, to ints; it
// leaves them as they are (noReply) when r is not such an answer, and
// returns why.
func renewReplies(r rueidis.RedisResult, ints []int64) error {
	vs, err := r.AsIntSlice()
	if err != nil {
		return err
	}
	if len(vs) != len(ints) {
		return fmt.Errorf("renew.lua answered %d replies for %d keys", len(vs), len(ints))
	}
	copy(ints, vs)
	return nil
}

// noPerm reports whether err is a master's refusal by its ACL.
func noPerm(err error) bool { return redisErrCode(err, "NOPERM") }

// renewChunk bounds the leases that one renew.lua call renews. Each call
// costs a master its own overhead (EVALSHA, running a Lua function) beside
// each key's GET and PEXPIRE: BenchmarkRenewChunk measured 8.5 µs of a
// master's CPU per key one per call and 3.9 µs at 100 per call
// (2026-12-06, redis-server 7.0.15, 2 busy cores). 100 keys run in well
// under a millisecond, so what is sent after a batch waits little more
// behind it than before.
const renewChunk = 100

// renewPipeline renews, on master i, the leases whose lock keys are keys
// and renew.lua arguments args (value, TTL), renewChunk of them per call
// (one per call on a Redis Cluster, whose keys lie in different slots),
// as one pipeline, waiting for the answers up to timeout. It returns one
// reply per lease (noReply where there was none) and the error that made
// any reply missing. A call that timed out may still run.
func (c *Client) renewPipeline(ctx context.Context, timeout time.Duration, i int, keys []string, args [][]string) ([]int64, error) {
	return c.onMaster(ctx, timeout, i, len(keys), func(nctx context.Context, rc rueidis.Client, ints []int64, failed func(error)) {
		chunk := renewChunk
		if rc.Mode() == rueidis.ClientModeCluster {
			chunk = 1
		}
		calls := make([]rueidis.LuaExec, 0, (len(keys)+chunk-1)/chunk)
		for lo := 0; lo < len(keys); lo += chunk {
			hi := min(lo+chunk, len(keys))
			call := rueidis.LuaExec{Keys: keys[lo:hi], Args: make([]string, 0, 2*(hi-lo))}
			for _, a := range args[lo:hi] {
				call.Args = append(call.Args, a...)
			}
			calls = append(calls, call)
		}
		// Redis refuses a whole call when its ACL leaves out one of the
		// keys: those leases are renewed again one per call, so that the
		// others of the call do not go without an answer
		// (TestACLRenewalRefusedForOneKey).
		var alone []int
		for k, r := range script.Renew.ExecMulti(nctx, rc, calls) {
			lo := k * chunk
			err := renewReplies(r, ints[lo:lo+len(calls[k].Keys)])
			if chunk > 1 && noPerm(err) {
				for j := lo; j < lo+len(calls[k].Keys); j++ {
					alone = append(alone, j)
				}
				continue
			}
			failed(err)
		}
		if len(alone) == 0 {
			return
		}
		calls = calls[:0]
		for _, j := range alone {
			calls = append(calls, rueidis.LuaExec{Keys: keys[j : j+1], Args: args[j]})
		}
		for m, r := range script.Renew.ExecMulti(nctx, rc, calls) {
			failed(renewReplies(r, ints[alone[m]:alone[m]+1]))
		}
	})
}

// batch runs s once for each lease on every master at once: one pipeline
// per master, one goroutine per master, however many leases, each under
// timeout; call gives a lease's keys and arguments on a master. It
// returns, per master, one integer reply per lease (noReply where there
// was none), and per master the error that made any reply missing.
func (c *Client) batch(ctx context.Context, timeout time.Duration, s *script.Script, leases []*Lease, call func(node int, l *Lease) rueidis.LuaExec) ([][]int64, []error) {
	type result struct {
		node int
		ints []int64
		err  error
	}
	results := make(chan result, len(c.nodes))
	for i := range c.nodes {
		c.spawn(func() {
			calls := make([]rueidis.LuaExec, len(leases))
			for j, l := range leases {
				calls[j] = call(i, l)
			}
			ints, err := c.pipeline(ctx, timeout, i, s, calls)
			results <- result{i, ints, err}
		})
	}
	replies := make([][]int64, len(c.nodes))
	errs := make([]error, len(c.nodes))
	for range c.nodes {
		r := <-results
		replies[r.node], errs[r.node] = r.ints, r.err
	}
	return replies, errs
}

// releaseAll deletes the keys of many leases, batched, waiting up to
// timeout for each batch's answers; Close and the reaper use it. It
// returns an error if some lease's keys were confirmed deleted on fewer
// than a majority of masters.
func (c *Client) releaseAll(ctx context.Context, timeout time.Duration, leases []*Lease) error {
	var failed []string   // the names of the first closeNames leases that failed
	var nFailed int       // how many failed
	var sample []error    // the masters' errors for one lease that failed
	var sampleGranted int // and how many masters answered for it
	var sampleName string // and its name
	// Where a lease's acquire was never answered, it may still arrive
	// after the delete: the value is buried there, in the same pipeline.
	unknown := make(map[*Lease]uint64)
	for _, l := range leases {
		l.settle()
		l.mu.Lock()
		if l.unanswered != 0 {
			unknown[l] = l.unanswered
		}
		l.mu.Unlock()
	}
	for lo := 0; lo < len(leases); lo += maxBatch {
		part := leases[lo:min(lo+maxBatch, len(leases))]
		replies, errs := c.batch(ctx, timeout, script.Release, part, func(node int, l *Lease) rueidis.LuaExec {
			return l.req.releaseCall(l.value, "", l.counter(), unknown[l]&(1<<node) != 0, l.TTL())
		})
		for j := range part {
			// A master that answered confirms the delete, whatever it
			// found; one that did not fails.
			tally := quorum.NewTally(len(c.nodes))
			for i := range c.nodes {
				if replies[i][j] != noReply {
					tally.Grant()
				} else {
					tally.Fail()
				}
			}
			if !tally.Won() {
				// This lease's errors: a master's first failure in the
				// batch may be another lease's, on a master that
				// answered for this one.
				nFailed++
				if len(failed) < closeNames {
					failed = append(failed, part[j].req.name)
				}
				sampleGranted, sampleName = tally.Granted(), part[j].req.name
				sample = make([]error, len(c.nodes))
				for i := range c.nodes {
					if replies[i][j] == noReply {
						sample[i] = errs[i]
					}
				}
			}
		}
	}
	if nFailed == 0 {
		return nil
	}
	qerr := &QuorumError{Op: "release", Name: sampleName, Granted: sampleGranted, Needed: c.quorum, Errs: sample}
	if len(leases) == 1 {
		return qerr
	}
	quoted := make([]string, len(failed))
	for k, n := range failed {
		quoted[k] = strconv.Quote(n)
	}
	names := strings.Join(quoted, ", ")
	if nFailed > closeNames {
		names += fmt.Sprintf(" and %d more", nFailed-closeNames)
	}
	return fmt.Errorf("distlock: the keys of %d of %d leases were not deleted on a majority of masters (%s; they expire with their TTL); the last: %w", nFailed, len(leases), names, qerr)
}

// closeNames is how many lock names releaseAll's error quotes.
const closeNames = 3

// reaper deletes the keys of lost leases, in batches, on one goroutine at
// a time.
type reaper struct {
	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu      sync.Mutex // guards queue, last and running
	queue   []*Lease
	last    time.Time // when the last lease joined queue
	running bool
}

// reap queues the deletion of lost lease l's keys (only where they still
// hold its value). It returns false, and does nothing, once Close has
// begun: the keys then expire with their TTL.
func (c *Client) reap(l *Lease) bool {
	r := &c.reaper
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		if !c.trySpawn(c.reapLoop) {
			return false
		}
		r.running = true
	}
	r.queue = append(r.queue, l)
	r.last = time.Now()
	return true
}

// reapGather and reapGatherMax: the reaper deletes a batch once no lease
// has been lost for reapGather and no master's leases are being read for
// key events, or reapGatherMax after it began to wait. Losses come in
// bursts (a master flushed, many keys deleted at once), and the deletes
// are clean-up: sent while the burst is still being read (lease_events.go),
// they queue in front of those reads on the same connections, and the
// last leases of the burst hear of their loss that much later. What is
// not deleted expires with its TTL.
const (
	reapGather    = 50 * time.Millisecond
	reapGatherMax = time.Second
)

// reapLoop deletes queued leases' keys until the queue is empty.
func (c *Client) reapLoop() {
	r := &c.reaper
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		c.reapWait()
		r.mu.Lock()
		part := r.queue
		r.queue = nil
		r.mu.Unlock()
		var ttl time.Duration
		for _, l := range part {
			ttl = max(ttl, l.req.ttl)
		}
		// Renewals of the leases still held come first (backlog.go): the
		// keys of lost leases expire by themselves.
		if c.backlog.admit(c.stopping, "reap", "", 0) != nil {
			continue // Close: the rest expire with their TTL
		}
		// Wait for the masters' answers as long as the keys can last:
		// stopping early would only queue the next batch behind this one
		// on the same connections. Close stops the wait (the keys then
		// expire by themselves).
		ctx, cancel := context.WithTimeout(c.stopping, ttl)
		c.releaseAll(ctx, ttl, part) // what is not confirmed expires with its TTL
		cancel()
	}
}

// reapWait waits until no lease has joined the reaper's queue for
// reapGather and no key-event read is going on, reapGatherMax at most, or
// until Close begins.
func (c *Client) reapWait() {
	r := &c.reaper
	began := time.Now()
	t := time.NewTimer(reapGather)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		quiet := time.Since(r.last)
		r.mu.Unlock()
		left := reapGatherMax - time.Since(began)
		reading := c.events != nil && c.events.reading.Load() > 0
		if (quiet >= reapGather && !reading) || left <= 0 {
			return
		}
		t.Reset(min(max(reapGather-quiet, reapGather/10), left))
	}
}
