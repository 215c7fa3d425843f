package distlock_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// These tests cover what the scripts' messages on each lock's watch
// channel change: distlock's own writes cost a watcher no read, Watch
// works on a master that publishes no keyspace events, and what the
// messages cannot tell (other clients' writes, other databases) is still
// told right where keyspace events are on.

// commandCalls returns how many times the servers have run cmd, summed
// (INFO commandstats; commands run by scripts count too).
func commandCalls(t *testing.T, servers []*redistest.Server, cmd string) int {
	t.Helper()
	total := 0
	for _, s := range servers {
		info, err := s.Do("INFO", "commandstats")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
			if !ok {
				continue
			}
			calls, _, _ := strings.Cut(stats, ",")
			n, err := strconv.Atoi(calls)
			if err != nil {
				t.Fatalf("INFO commandstats: %q: %v", line, err)
			}
			total += n
		}
	}
	return total
}

// notifyConfig returns s's notify-keyspace-events.
func notifyConfig(t *testing.T, s *redistest.Server) string {
	t.Helper()
	out, err := s.Do("CONFIG", "GET", "notify-keyspace-events")
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(out, "\n")
	return v
}

// Every acquire and release by distlock used to cost each watching Client
// one read (GET and PTTL) per master. The scripts now say what they wrote:
// over many cycles the watchers read nothing beyond their first reads.
// PTTL counts the reads alone: uncontended acquires never run it. Both
// with the flags Watch sets, and with every keyspace event on (a SET then
// publishes "new", "set" and "expire", all to be matched to its message).
func TestWatchOwnWritesNeedNoRead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		notify string // set beforehand; "" leaves it to Watch
		cfg    distlock.Config
	}{
		{"configured by Watch", "", distlock.Config{}},
		{"all events, SkipNotifyConfig", "KEAn", distlock.Config{SkipNotifyConfig: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := masters(t, 3)
			if tc.notify != "" {
				for _, s := range servers {
					if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", tc.notify); err != nil {
						t.Fatal(err)
					}
				}
			}
			c := newClient(t, servers, distlock.Config{})
			const watchers, cycles = 4, 20
			var chans []<-chan distlock.Event
			for range watchers {
				w := newClient(t, servers, tc.cfg)
				events, err := w.Watch(t.Context(), "reads")
				if err != nil {
					t.Fatal(err)
				}
				chans = append(chans, events)
			}
			before := commandCalls(t, servers, "pttl")
			for i := range cycles {
				l, err := c.TryAcquire(t.Context(), "reads")
				if err != nil {
					t.Fatal(err)
				}
				for _, events := range chans {
					if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
						t.Fatalf("cycle %d: got %+v; want acquired", i, ev)
					}
				}
				if err := l.Release(t.Context()); err != nil {
					t.Fatal(err)
				}
				for _, events := range chans {
					if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
						t.Fatalf("cycle %d: got %+v; want released", i, ev)
					}
				}
			}
			// Each watcher may still have been doing its first read on the
			// master that answered last when Watch returned: at most one
			// per connection.
			reads := commandCalls(t, servers, "pttl") - before
			t.Logf("%d watch reads over %d acquire/release cycles, %d watchers, %d masters", reads, cycles, watchers, len(servers))
			if reads > watchers*len(servers) {
				t.Errorf("%d watch reads over %d cycles; want at most %d, however many cycles", reads, cycles, watchers*len(servers))
			}
		})
	}
}

// A master that publishes no keyspace events at all, and a Client told not
// to change that: the scripts' messages still report acquire and release,
// and the read scheduled at the holder's expiry reports expiry.
func TestWatchWithoutKeyspaceEvents(t *testing.T) {
	servers := masters(t, 3)
	for _, s := range servers {
		if got := notifyConfig(t, s); got != "" {
			t.Fatalf("notify-keyspace-events on a fresh server: %q; want none", got)
		}
	}
	w := newClient(t, servers, distlock.Config{SkipNotifyConfig: true})
	c := newClient(t, servers, distlock.Config{}) // TryAcquire only: it never watches
	events, err := w.Watch(t.Context(), "quiet")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l, err := c.TryAcquire(t.Context(), "quiet")
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired || ev.Masters < 2 {
			t.Fatalf("round %d, after TryAcquire: got %+v; want acquired by a majority", i, ev)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
			t.Fatalf("round %d, after Release: got %+v; want released", i, ev)
		}
	}
	killedHolderExpires(t, servers, "quiet", 800*time.Millisecond, events)
	for _, s := range servers {
		if got := notifyConfig(t, s); got != "" {
			t.Errorf("notify-keyspace-events after Watch with SkipNotifyConfig: %q; want it left alone", got)
		}
	}
}

// A client other than distlock writes the lock key: no script says so, and
// the keyspace events it causes are read as such.
func TestWatchOtherWriter(t *testing.T) {
	servers := masters(t, 3)
	w := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "foreign")
	if err != nil {
		t.Fatal(err)
	}
	key := distlock.DefaultKeyPrefix + "foreign"
	for _, s := range servers {
		if _, err := s.Do("SET", key, "not-distlock", "PX", "10000"); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired || ev.Initial {
		t.Fatalf("after another client's SET PX: got %+v; want acquired", ev)
	}
	for _, s := range servers {
		if _, err := s.Do("DEL", key); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
		t.Fatalf("after another client's DEL: got %+v; want released", ev)
	}
}

// Pub/sub ignores databases: a Client on database 1 of the same servers
// publishes on the same watch channels. A watcher on database 0 must not
// take its writes for those of database 0.
func TestWatchOtherDatabase(t *testing.T) {
	servers := masters(t, 3)
	db1 := make([]string, len(servers))
	for i, u := range redistest.URLs(servers) {
		db1[i] = strings.TrimSuffix(u, "/0") + "/1"
	}
	other, err := distlock.New(distlock.Config{Nodes: db1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	w := newClient(t, servers, distlock.Config{})
	c := newClient(t, servers, distlock.Config{})
	events, err := w.Watch(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	l, err := other.TryAcquire(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	noEvent(t, events, 200*time.Millisecond, "acquired on database 1")
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noEvent(t, events, 200*time.Millisecond, "released on database 1")
	l, err = c.TryAcquire(t.Context(), "db")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Fatalf("after TryAcquire on database 0: got %+v; want acquired", ev)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
		t.Fatalf("after Release on database 0: got %+v; want released", ev)
	}
}

// The scripts publish with pcall: a user that may not publish (ACL
// without channel rights, the default for new users since Redis 7) still
// takes, extends and releases locks.
func TestLockWithoutChannelRights(t *testing.T) {
	servers := masters(t, 3)
	nodes := make([]string, len(servers))
	for i, s := range servers {
		if _, err := s.Do("ACL", "SETUSER", "nochannels", "on", ">secret", "~*", "resetchannels", "+@all"); err != nil {
			t.Fatal(err)
		}
		nodes[i] = "redis://nochannels:secret@" + s.Addr() + "/0"
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := c.TryAcquire(t.Context(), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(t.Context(), 5*time.Second); err != nil {
		t.Errorf("Extend: %v", err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Errorf("Release: %v", err)
	}
	noLockKeys(t, servers)
}

// Another program changes notify-keyspace-events after the watch
// subscribed (here to "Ex", keyevent expirations only, a common setting):
// the keyspace events that confirm the scripts' messages stop. The watch
// notices the first message left unconfirmed, reads the key instead, reads
// the setting again and, not told to skip it, sets its flags again: events
// keep coming, and a waiter is still woken by a release.
func TestWatchNotifyChangedByOtherProgram(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{RetryMinDelay: time.Minute, RetryMaxDelay: time.Minute})
	events, err := w.Watch(t.Context(), "changed")
	if err != nil {
		t.Fatal(err)
	}
	// Watch returns once a majority subscribed; the last master's
	// connection may still be setting its flags (CONFIG GET, then SET),
	// and would overwrite the other program's.
	eventually(t, "the watch's flags set on every master", func() bool {
		for _, s := range servers {
			v, err := s.Do("CONFIG", "GET", "notify-keyspace-events")
			if err != nil || !strings.Contains(fmt.Sprint(v), "K") {
				return false
			}
		}
		return true
	})
	for _, s := range servers {
		if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", "Ex"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		l, err := c.Acquire(t.Context(), "changed")
		if err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
			t.Errorf("round %d: got %+v; want acquired", i, ev)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
			t.Errorf("round %d: got %+v; want released", i, ev)
		}
	}
	eventually(t, "notify-keyspace-events set again on every master", func() bool {
		for _, s := range servers {
			v, err := s.Do("CONFIG", "GET", "notify-keyspace-events")
			flags := fmt.Sprint(v)
			if err != nil || !strings.Contains(flags, "K") || !strings.Contains(flags, "g") || !strings.Contains(flags, "E") {
				return false
			}
		}
		return true
	})

	// Changed again while a waiter (a backoff of a minute) waits.
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := c.Acquire(ctx, "changed", distlock.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, "changed") // before the waiter: Acquire returns at a majority
	got := acquireLater(t, ctx, w, "changed")
	waitWaiters(t, servers[0], "changed", 1)
	for _, s := range servers {
		if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", ""); err != nil {
			t.Fatal(err)
		}
	}
	released := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h.err != nil {
			t.Fatal(h.err)
		}
		if d := time.Since(released); d > time.Second {
			t.Errorf("waiter woken %v after the release; want within 1s", d)
		}
		h.l.Release(ctx)
	case <-time.After(5 * time.Second):
		t.Errorf("waiter not woken within 5s of the release (backoff 1 min)")
	}
}

// scriptWrite writes the lock key name on s as distlock's scripts do,
// message first: op "set" (acquire.lua on a free key) or "del"
// (release.lua).
func scriptWrite(t *testing.T, s *redistest.Server, op, name, value string) {
	t.Helper()
	const src = `
if ARGV[1] == 'set' then
  redis.call('PUBLISH', '__distlock__:' .. KEYS[1], 'set 10000 ' .. ARGV[2])
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', 10000)
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0`
	if _, err := s.Do("EVAL", src, "1", distlock.DefaultKeyPrefix+name, op, value); err != nil {
		t.Fatalf("%s %s on %s: %v", op, name, s.Addr(), err)
	}
}

// Issue 21 item 1: a waiter wins masters 1 and 2, yields to the first in
// line and deletes its keys; a moment later it wins for real with the same
// value (Acquire used to keep one value for all its attempts). Both holds
// are reported: a value released once was never accepted again.
func TestWatchSameValueHeldAgain(t *testing.T) {
	servers := masters(t, 3)
	w := newClient(t, servers, distlock.Config{})
	const name = "again"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers[1:] {
		scriptWrite(t, s, "set", name, "waiter-value")
	}
	wantEvent(t, events, distlock.EventAcquired, "held on masters 1 and 2")
	for _, s := range servers[1:] {
		scriptWrite(t, s, "del", name, "waiter-value")
	}
	wantEvent(t, events, distlock.EventReleased, "deleted from masters 1 and 2")
	for _, gap := range []time.Duration{time.Second, 0} {
		time.Sleep(gap)
		for _, s := range servers {
			scriptWrite(t, s, "set", name, "waiter-value")
		}
		wantEvent(t, events, distlock.EventAcquired, fmt.Sprintf("the same value held again %v later", gap))
		for _, s := range servers {
			scriptWrite(t, s, "del", name, "waiter-value")
		}
		wantEvent(t, events, distlock.EventReleased, fmt.Sprintf("the same value released again %v later", gap))
	}
	noEvent(t, events, 100*time.Millisecond, "after the last release")
}

// Issue 21 item 3: another program clears notify-keyspace-events; the
// next holds, of 5 and 50 ms, are reported all the same (they used to make
// no event: their messages, unconfirmed, were dropped, and the reads that
// replaced them found the lock free again).
func TestWatchNotifyClearedShortHolds(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	w := newClient(t, servers, distlock.Config{})
	const name = "cleared"
	events, err := w.Watch(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch's flags set on every master", func() bool {
		for _, s := range servers {
			if !strings.Contains(notifyConfig(t, s), "K") {
				return false
			}
		}
		return true
	})
	for _, s := range servers {
		if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", ""); err != nil {
			t.Fatal(err)
		}
	}
	for i, hold := range []time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond} {
		l, err := c.TryAcquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(hold)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, events, distlock.EventAcquired, fmt.Sprintf("cycle %d, held %v", i, hold))
		wantEvent(t, events, distlock.EventReleased, fmt.Sprintf("cycle %d, released after %v", i, hold))
	}
}
