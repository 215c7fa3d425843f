package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// next returns the next event on ch, failing after d.
func next(t *testing.T, ch <-chan distlock.Event, d time.Duration) distlock.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed; want an event")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return distlock.Event{}
}

// killedHolderExpires runs a child process that takes name with ttl (see
// startHolder), kills it once events say it holds the lock, and fails
// unless the next event is an expiry, reported within TTL + 1s of the
// kill.
func killedHolderExpires(t *testing.T, servers []*redistest.Server, name string, ttl time.Duration, events <-chan distlock.Event) {
	t.Helper()
	cmd, _, _ := startHolder(t, servers, name, ttl)
	heldByChild(t, events)
	// The holder dies without releasing: its keys expire.
	cmd.Process.Kill()
	killed := time.Now()
	if ev := next(t, events, ttl+2*time.Second); ev.Type != distlock.EventExpired {
		t.Errorf("after the holder died: got %+v; want expired", ev)
	}
	if d := time.Since(killed); d > ttl+time.Second {
		t.Errorf("expiry reported %v after the holder died; want within TTL + 1s", d)
	}
}

// heldByChild waits for the events of a child holder's Acquire (startHolder
// returns once it holds the lock) and fails unless the last says acquired.
// On a loaded machine the child's first attempts may time out on a master
// and be taken back after a majority ran them, and a watcher sees those
// come and go first: it takes events until none comes for 200ms.
func heldByChild(t *testing.T, events <-chan distlock.Event) {
	t.Helper()
	last := next(t, events, 2*time.Second)
	for quiet := false; !quiet; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("watch channel closed; want an event")
			}
			last = ev
		case <-time.After(200 * time.Millisecond):
			quiet = true
		}
	}
	if last.Type != distlock.EventAcquired {
		t.Fatalf("after the child holder acquired: last event %+v; want acquired", last)
	}
}

func TestWatchAcquireRelease(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	events, err := w.Watch(ctx, "watched")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Acquire(t.Context(), "watched")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired || ev.Name != "watched" || ev.Masters < 2 || ev.Initial {
		t.Errorf("after Acquire: got %+v; want acquired by a majority", ev)
	}
	l.Release(t.Context())
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
		t.Errorf("after Release: got %+v; want released", ev)
	}
	// Nothing else happened to the lock: no more events, and the channel
	// closes once ctx ends (closing runs just after, not within, cancel).
	select {
	case ev := <-events:
		t.Errorf("event with nothing happening: got %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if ok {
				continue // delivered before the close
			}
		case <-deadline:
			t.Error("channel not closed after ctx ended")
		}
		break
	}
}

// Another program's value written over the holder's on a majority before
// its expiry ends the hold as a delete does: EventReleased, then the new
// value's EventAcquired (a use test read EventExpired's godoc, "a new
// holder replaced it", as covering this).
func TestWatchOverwriteByAnotherProgram(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	events := watchedHold(t, servers, c, newClient(t, servers, distlock.Config{}), "overwritten", 5*time.Second)
	for _, s := range servers[:2] {
		if _, err := s.Do("SET", "distlock:overwritten", "foreign", "PX", "60000"); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased || ev.Masters < 2 {
		t.Errorf("after another value was written over the holder's on 2 of 3 masters: got %+v; want released by a majority", ev)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Errorf("then: got %+v; want the foreign value acquired", ev)
	}
}

// watchedHold watches name with w, then acquires it with c for ttl
// (released when the test ends), and returns the watch's events once the
// acquire was told and every master holds the key.
func watchedHold(t *testing.T, servers []*redistest.Server, c, w *distlock.Client, name string, ttl time.Duration) <-chan distlock.Event {
	t.Helper()
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Acquire(t.Context(), name, distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Fatalf("after Acquire: got %+v; want acquired", ev)
	}
	heldEverywhere(t, servers, name)
	return events
}

func TestWatchInitialAndExpiry(t *testing.T) {
	servers := masters(t, 3)
	// A holder that dies: its keys expire without release.
	for _, s := range servers {
		s.Do("SET", "distlock:dead", "dead-holder", "PX", "700")
	}
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "dead")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, time.Second); ev.Type != distlock.EventAcquired || !ev.Initial {
		t.Errorf("first event on a held lock: got %+v; want initial acquired", ev)
	}
	start := time.Now()
	if ev := next(t, events, 3*time.Second); ev.Type != distlock.EventExpired {
		t.Errorf("after the holder's TTL: got %+v; want expired", ev)
	}
	if d := time.Since(start); d > 1700*time.Millisecond {
		t.Errorf("expiry reported %v after watching began; want within TTL + 1s", d)
	}
}

// A busy master deletes expired keys late; the watch still reports expiry
// on time because it reads the key at the holder's known expiry.
func TestWatchExpiryOnBusyMaster(t *testing.T) {
	servers := masters(t, 3)
	for _, s := range servers {
		// 10,000 other keys with a TTL slow down Redis's active expiry.
		if _, err := s.Do("EVAL", `for i=1,10000 do redis.call('SET', 'other:'..i, 'x', 'EX', 3600) end return 1`, "0"); err != nil {
			t.Fatal(err)
		}
	}
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	killedHolderExpires(t, servers, "busy", time.Second, events)
}

func TestWatchMasterRestarted(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "restart")
	if err != nil {
		t.Fatal(err)
	}
	// A restarted master forgets notify-keyspace-events; the watch sets
	// it again and resubscribes.
	if err := servers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	servers[1].Kill()
	for i := range 3 {
		l, err := c.Acquire(t.Context(), "restart")
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, 5*time.Second); ev.Type != distlock.EventAcquired {
			t.Fatalf("round %d: got %+v; want acquired", i, ev)
		}
		l.Release(t.Context())
		if ev := next(t, events, 5*time.Second); ev.Type != distlock.EventReleased {
			t.Fatalf("round %d: got %+v; want released", i, ev)
		}
	}
}

// A receiver that does not read loses the oldest events, never blocks the
// Client, and learns how many it missed.
func TestWatchSlowReceiver(t *testing.T) {
	servers := masters(t, 1)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	// Slow enough for the watcher to see each change, far too fast for a
	// receiver that does not read.
	const rounds = 2 * distlock.WatchBuffer
	for range rounds {
		l, err := c.Acquire(t.Context(), "slow")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		l.Release(t.Context())
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	got, missed := 0, 0
	for {
		select {
		case ev := <-events:
			got++
			missed += ev.Missed
			continue
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	// Each change is counted once, received or missed: at most 2*rounds.
	if got != distlock.WatchBuffer || missed == 0 || got+missed > 2*rounds {
		t.Errorf("received %d events, %d reported missed; want %d received, some missed, at most %d in all", got, missed, distlock.WatchBuffer, 2*rounds)
	}
	// The Client was never blocked: it still works.
	if l, err := c.TryAcquire(t.Context(), "slow"); err != nil {
		t.Errorf("TryAcquire after a slow watch: %v", err)
	} else {
		l.Release(t.Context())
	}
}

func TestWatchNeedsQuorum(t *testing.T) {
	servers := masters(t, 3)
	w := newClient(t, servers, distlock.Config{})
	servers[0].Kill()
	servers[1].Kill()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := w.Watch(ctx, "q"); !errors.Is(err, distlock.ErrNoQuorum) {
		t.Errorf("Watch with a majority down: got %v; want ErrNoQuorum", err)
	}
}

// A Client that waits for a lock again soon after its last wait keeps its
// subscription (it lingers, 2 s here): no SUBSCRIBE, read and UNSUBSCRIBE
// on every master each time. Then it unsubscribes.
func TestWaiterSubscriptionLingers(t *testing.T) {
	const name = "linger"
	t.Cleanup(distlock.SetWatchLinger(2 * time.Second))
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	waiter := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	subscribes := func() int { return commandCalls(t, servers, "subscribe") }
	wait := func() {
		t.Helper()
		l, err := holder.Acquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		heldEverywhere(t, servers, name) // before any waiter: Acquire returns at a majority
		got := acquireLater(t, ctx, waiter, name)
		// The waiter, refused, waits: it subscribes (the first time).
		waitWaiters(t, servers[0], name, 1)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		take(t, got, "waiter").Release(ctx)
	}
	wait()
	for _, s := range servers {
		waitSubscribers(t, s, name, true)
	}
	first := subscribes()
	wait()
	if n := subscribes(); n != first {
		t.Errorf("SUBSCRIBE ran %d times more for a second wait within a second; want 0", n-first)
	}
	for _, s := range servers {
		waitSubscribers(t, s, name, false)
	}
}

// A Watch whose ctx ends before a majority subscribed says which lock and
// how far it got, and matches ctx's error.
func TestWatchContextEndsWhileSubscribing(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	redistest.PauseUntilEnd(t, servers[1:]...)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Watch(ctx, "paused")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `watch "paused"`) {
		t.Errorf("Watch with a majority paused until ctx ends: got %v; want DeadlineExceeded, naming the lock", err)
	}
}

// A master that restarted without its data while the lock was held finds
// the key gone before its expiry when the watch reads it again: that is no
// release (the other masters still hold it, and there is no event). When
// the holder then dies, its keys expire on the others: expired, not
// released.
func TestWatchRestartedMasterThenExpiry(t *testing.T) {
	servers := masters(t, 3)
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "restarted")
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	cmd, _, _ := startHolder(t, servers, "restarted", ttl)
	heldByChild(t, events)
	if err := servers[2].RestartEmpty(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Fatalf("a minority master restarted empty: got %+v; want no event", ev)
	case <-time.After(500 * time.Millisecond): // the watch reconnects and reads
	}
	cmd.Process.Kill()
	if ev := next(t, events, ttl+2*time.Second); ev.Type != distlock.EventExpired {
		t.Errorf("holder killed after a master restarted empty: got %+v; want expired", ev)
	}
}

// How an earlier holder's keys went does not describe the next holder's:
// the first holder releases everywhere; the next holds masters 0 and 1
// only (master 2 paused as it acquires), and dies. Master 2 last saw a
// release, but of the first holder: the event is expired.
func TestWatchEarlierReleaseNotCounted(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "earlier")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Acquire(t.Context(), "earlier")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Fatalf("got %+v; want acquired", ev)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
		t.Fatalf("got %+v; want released", ev)
	}
	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	cmd, _, _ := startHolder(t, servers, "earlier", ttl)
	if err := servers[2].Resume(); err != nil {
		t.Fatal(err)
	}
	heldByChild(t, events)
	cmd.Process.Kill()
	if ev := next(t, events, ttl+2*time.Second); ev.Type != distlock.EventExpired {
		t.Errorf("holder of 2 masters killed: got %+v; want expired", ev)
	}
}

// cycles takes and at once releases name n times with c and fails unless
// events reports each, acquired then released.
func cycles(t *testing.T, c *distlock.Client, name string, n int, events <-chan distlock.Event) {
	t.Helper()
	for i := range n {
		l, err := c.TryAcquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
			t.Fatalf("%s, cycle %d: got %+v; want acquired", name, i, ev)
		}
		if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
			t.Fatalf("%s, cycle %d: got %+v; want released", name, i, ev)
		}
	}
}

// Issue 22 item 2: a lock key of another type (a list) on every master.
// Watching it, or waiting for it, fails for that name alone (and the
// name stays subscribed, as after any watch): the Client's shared watch
// connections go on, a Watch of another name sees every
// change, and new Watches work. (The read's WRONGTYPE used to end the
// connection, again and again.)
func TestWatchWrongTypeKey(t *testing.T) {
	// The failed Watch's subscription lingers for the whole test.
	t.Cleanup(distlock.SetWatchLinger(time.Minute))
	servers := masters(t, 3)
	for _, s := range servers {
		if _, err := s.Do("RPUSH", distlock.DefaultKeyPrefix+"victim", "x"); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	innocent, err := w.Watch(t.Context(), "innocent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(ctxTimeout(t, 3*time.Second), "victim"); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Watch of a list key: got %v; want an error saying WRONGTYPE", err)
	}
	if _, err := w.Acquire(ctxTimeout(t, 300*time.Millisecond), "victim"); err == nil {
		t.Error("Acquire of a list key: got a lease; want an error")
	}
	cycles(t, c, "innocent", 5, innocent)
	other, err := w.Watch(t.Context(), "other")
	if err != nil {
		t.Fatalf("a new Watch after one of a list key: %v", err)
	}
	cycles(t, c, "other", 2, other)
}

// Issue 22 item 2, the other way: a lock key holding a value longer than
// the masters' pub/sub output buffer limit (32 MB by default; 1 MB here).
// Reading it whole made the master close the watch connection, and every
// watch of the Client on it, again and again.
func TestWatchHugeValue(t *testing.T) {
	servers := masters(t, 3)
	huge := strings.Repeat("x", 2<<20)
	for _, s := range servers {
		if _, err := s.Do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 1mb 0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Do("SET", distlock.DefaultKeyPrefix+"huge", huge, "PX", "60000"); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	innocent, err := w.Watch(t.Context(), "innocent")
	if err != nil {
		t.Fatal(err)
	}
	events, err := w.Watch(ctxTimeout(t, 3*time.Second), "huge")
	if err != nil {
		t.Fatalf("Watch of a key with a 2 MB value: %v", err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired || !ev.Initial {
		t.Errorf("Watch of a key with a 2 MB value: got %+v; want initial acquired", ev)
	}
	cycles(t, c, "innocent", 5, innocent)
}

// A flush (FLUSHALL, FLUSHDB) names no key: no keyspace event, no script
// message. The watching Client hears it on its own connections (loss
// events: the masters tell every Client tracking keys that all changed)
// and reads its watched keys there again, so a hold flushed from a
// majority ends at once, as released, not at its TTL.
func TestWatchFlushEndsHold(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	events := watchedHold(t, servers, c, newClient(t, servers, distlock.Config{}), "flushed", 20*time.Second)
	start := time.Now()
	for _, s := range servers[:2] {
		if _, err := s.Do("FLUSHALL"); err != nil {
			t.Fatal(err)
		}
	}
	ev := next(t, events, 5*time.Second)
	if ev.Type != distlock.EventReleased {
		t.Fatalf("after FLUSHALL on 2 of 3 masters: got %+v; want released", ev)
	}
	t.Logf("released %v after the flushes", time.Since(start))
}

// trackingIDs returns the ids of s's clients that track keys.
func trackingIDs(t *testing.T, s *redistest.Server) map[string]bool {
	t.Helper()
	out, err := s.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool)
	for line := range strings.Lines(out) {
		if !trackingFlag.MatchString(" " + line) {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				ids[id] = true
			}
		}
	}
	return ids
}

// The watching Client's tracking connection to a master drops (here
// killed; a network blip, a timeout) while its watch connection stays up.
// Its close makes the watches read their keys at once, before any flush;
// a flush while the tracking connection is down reached no one, and a
// Client that only watches sent nothing that would dial it again: the
// hold flushed from a majority was told only at its expiry. The watch now
// dials it (a PING) before that read (masterWatch.retrack). Found by an
// adversarial read of the flush change.
func TestWatchFlushWhileTrackingDown(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	theirs := make([]map[string]bool, len(servers))
	for i, s := range servers {
		theirs[i] = trackingIDs(t, s)
	}
	events := watchedHold(t, servers, c, newClient(t, servers, distlock.Config{}), "flushed", 20*time.Second)
	for i, s := range servers[:2] {
		for id := range trackingIDs(t, s) {
			if theirs[i][id] {
				continue
			}
			if _, err := s.Do("CLIENT", "KILL", "ID", id); err != nil {
				t.Fatal(err)
			}
			t.Logf("killed the watcher's tracking connection %s on master %d", id, i)
		}
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	for _, s := range servers[:2] {
		if _, err := s.Do("FLUSHALL"); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case ev := <-events:
		t.Logf("%v after the flushes: %+v", time.Since(start), ev)
		if ev.Type != distlock.EventReleased {
			t.Errorf("got %v; want released", ev.Type)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no event within 5 s of FLUSHALL on 2 of 3 masters (TTL 20 s); want released at once")
	}
	for i, s := range servers[:2] {
		n := 0
		for id := range trackingIDs(t, s) {
			if !theirs[i][id] {
				n++
			}
		}
		t.Logf("master %d: the watcher has %d tracking connections %v after the kill", i, n, time.Since(start)+200*time.Millisecond)
	}
}

// pttlSettled waits until the PTTL count on s stops moving, and returns it.
func pttlSettled(t *testing.T, s *redistest.Server) int {
	t.Helper()
	last := -1
	for {
		n := commandCalls(t, []*redistest.Server{s}, "pttl")
		if n == last {
			return n
		}
		last = n
		time.Sleep(300 * time.Millisecond)
	}
}

// A watch connection lost and made again reads each watched name once
// (the resubscription's read): the closing of its own connection, which
// rueidis reports as "every key may have changed", must not read them all
// again (it did, 400 reads for 200 names, until the session cleared
// rereadAll before its first read). Found by an adversarial read.
func TestWatchReconnectReadsOnce(t *testing.T) {
	const names = 200
	servers := masters(t, 3)
	w := newClient(t, servers, distlock.Config{})
	for i := range names {
		if _, err := w.Watch(t.Context(), fmt.Sprintf("n%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := pttlSettled(t, servers[2])
	if _, err := servers[2].Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	reads := pttlSettled(t, servers[2]) - before
	t.Logf("PTTLs on master 2 after its watch connection was killed: %d for %d names", reads, names)
	if reads > names {
		t.Errorf("%d PTTLs for %d names: each read %.1f times; want once", reads, names, float64(reads)/names)
	}
}
