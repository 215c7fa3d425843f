package distlock

import "time"

// Queued returns how many goroutines of c hold or wait for name's turn
// (the local queue, acquire.go), for tests that must know a goroutine waits.
func Queued(c *Client, name string) int {
	c.queue.mu.Lock()
	defer c.queue.mu.Unlock()
	if s := c.queue.slots[name]; s != nil {
		return s.refs
	}
	return 0
}

// SetWatchLinger sets how long a name's subscription outlives its last
// watcher or waiter, and returns a function that restores it.
func SetWatchLinger(d time.Duration) (restore func()) {
	old := watchLinger.Swap(int64(d))
	return func() { watchLinger.Store(old) }
}

// SetTurnHook runs f whenever a waiting Acquire gets its turn at a name,
// before it takes a lease handed over to it, and returns a function that
// removes it.
func SetTurnHook(f func(name string)) (restore func()) {
	testHookTurn.Store(&f)
	return func() { testHookTurn.Store(nil) }
}

// SetWatchHook runs f whenever a waiting Acquire, after its first failed
// attempt, is about to watch name for wake-ups, and returns a function that
// removes it.
func SetWatchHook(f func(name string)) (restore func()) {
	testHookWatch.Store(&f)
	return func() { testHookWatch.Store(nil) }
}

// SetLearntHook runs f whenever a waiting Acquire wakes for a place in
// line that an answer heard after its attempt's verdict gave it, and
// returns a function that removes it.
func SetLearntHook(f func(name string)) (restore func()) {
	testHookLearnt.Store(&f)
	return func() { testHookLearnt.Store(nil) }
}

// WantMetadata counts n more goroutines waiting for name's turn with
// metadata, as far as a handoff's choice of the next lease's metadata goes
// (turn.nextMetadata), and nothing else: a test makes the handoff guess
// wrong with it.
func WantMetadata(c *Client, name, metadata string, n int) {
	c.queue.mu.Lock()
	defer c.queue.mu.Unlock()
	s := c.queue.slotLocked(name)
	if s.wants == nil {
		s.wants = make(map[string]int)
	}
	s.wants[metadata] += n
}

// HoldLease takes l's mutex and returns the function that gives it back.
// A test stands in with it for a goroutine that is slow to run (not
// scheduled, or busy with the rest of a big batch) when it would take it:
// a renewal's answers are settled lease by lease (Lease.answered), after
// keyEvents.renewedOn judged the messages counted meanwhile.
func HoldLease(l *Lease) (release func()) {
	l.mu.Lock()
	return l.mu.Unlock
}

// AcquiresWait reports whether c holds new acquires back because its
// renewals are late on a majority of masters (backlog.go).
func AcquiresWait(c *Client) bool { return c.backlog.gate.Load() != nil }
