package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// Background renewal keeps a lease held well past its TTL.
func TestRenewalKeepsLease(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "renewed", distlock.WithTTL(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
		t.Fatalf("lease ended while it should be renewed: %v", l.Err())
	case <-time.After(time.Second):
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err after 1s with TTL 300ms: got %v; want nil (renewed)", err)
	}
	if until := time.Until(l.Deadline()); until <= 0 || until > 300*time.Millisecond {
		t.Errorf("Deadline: %v from now; want within (0, 300ms]", until)
	}
	for _, s := range servers {
		pttl, _ := s.Do("PTTL", "distlock:renewed")
		if n, _ := strconv.Atoi(pttl); n <= 0 {
			t.Errorf("master %s: PTTL %s; want > 0", s.Addr(), pttl)
		}
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// With a majority of masters paused right after acquiring, the lease is
// lost before its TTL has passed since the Acquire call began, which is
// before any other client could take the lock.
func TestLossDetectedBeforeExpiry(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	const ttl = time.Second
	before := time.Now()
	l, err := c.Acquire(t.Context(), "paused", distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	servers[0].Pause()
	servers[1].Pause()
	t.Cleanup(func() { servers[0].Resume(); servers[1].Resume() })
	// The promise is Err's: never nil once the keys may have expired, a
	// TTL after the Acquire began (Err checks the validity itself). Done
	// closes by a timer, which a loaded machine may run a little late.
	time.Sleep(time.Until(before.Add(ttl)))
	if err := l.Err(); err == nil {
		t.Errorf("Err nil %v after Acquire began, a majority paused; want the loss before TTL %v", time.Since(before), ttl)
	}
	select {
	case <-l.Done():
	case <-time.After(2 * ttl):
		t.Fatal("Done not closed 2 TTLs after a majority of masters was paused")
	}
	if d := time.Since(before); d >= ttl+100*time.Millisecond {
		t.Errorf("Done closed %v after Acquire began; want by TTL %v (a timer's lateness aside)", d, ttl)
	}
	if err := l.Err(); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Err: got %v; want ErrLeaseLost", err)
	}
	if err := l.Release(t.Context()); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Release of a lost lease: got %v; want ErrLeaseLost", err)
	}
}

// A majority reporting the key gone loses the lease at the next renewal,
// long before its validity runs out, where the masters send no key-change
// messages (DisableLossEvents; TestLossEvents for the messages).
func TestLossWhenKeysVanish(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{DisableLossEvents: true})
	const ttl = 6 * time.Second
	l, err := c.Acquire(t.Context(), "vanish", distlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	// An acquire returns at a majority: a delete that came before a
	// straggling master's SET would leave the lease rightly held there
	// (on masters 0 and 2, say), renewed, and never lost.
	everyMasterHolds(t, servers, "vanish")
	start := time.Now()
	servers[0].Do("DEL", "distlock:vanish")
	servers[1].Do("SET", "distlock:vanish", "another-holder")
	// The renewal is due at TTL/3 (2s); on a loaded machine it may run
	// late, but the loss must show before the validity would run out.
	select {
	case <-l.Done():
	case <-time.After(ttl * 4 / 5):
		t.Fatal("Done not closed 4/5 of a TTL after a majority lost the key")
	}
	if d := time.Since(start); d < ttl/3-100*time.Millisecond {
		t.Errorf("loss noticed %v after the keys vanished, before the renewal was due; want at the next renewal (~%v)", d, ttl/3)
	}
	if err := l.Err(); !errors.Is(err, distlock.ErrLeaseLost) || !strings.Contains(err.Error(), "gone or taken") {
		t.Errorf("Err: got %v; want ErrLeaseLost saying the keys are gone or taken", err)
	}
	// Release of the lost lease still deletes its key where it remains,
	// and leaves the other holder's alone.
	if err := l.Release(t.Context()); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Release: got %v; want ErrLeaseLost", err)
	}
	if got, _ := servers[2].Do("GET", "distlock:vanish"); got != "" {
		t.Errorf("master 2 still has the lost lease's key %q; want it deleted", got)
	}
	if got, _ := servers[1].Do("GET", "distlock:vanish"); got != "another-holder" {
		t.Errorf("master 1: got %q; want another holder's value untouched", got)
	}
}

func TestExtend(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "ext", distlock.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(t.Context(), 20*time.Second); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if l.TTL() != 20*time.Second {
		t.Errorf("TTL after Extend: got %v; want 20s", l.TTL())
	}
	if until := time.Until(l.Deadline()); until < 19*time.Second {
		t.Errorf("Deadline after Extend: %v from now; want about 20s less drift", until)
	}
	// Extend returns once a majority renewed; the last master may answer
	// a moment later.
	renewed := func() (n int) {
		for _, s := range servers {
			pttl, _ := s.Do("PTTL", "distlock:ext")
			if ms, _ := strconv.Atoi(pttl); ms >= 19000 {
				n++
			}
		}
		return n
	}
	if n := renewed(); n < 2 {
		t.Errorf("after Extend: %d masters with PTTL about 20000; want a majority at least", n)
	}
	eventually(t, "every master renewed to about 20s", func() bool { return renewed() == len(servers) })
	// Another client cannot extend or release what it does not hold.
	for _, s := range servers {
		s.Do("SET", "distlock:ext", "someone-else", "PX", "20000")
	}
	if err := l.Extend(t.Context(), 20*time.Second); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Extend of keys another holds: got %v; want ErrLeaseLost", err)
	}
	l.Release(t.Context())
	for _, s := range servers {
		if got, _ := s.Do("GET", "distlock:ext"); got != "someone-else" {
			t.Errorf("master %s: got %q; want the other holder's key untouched", s.Addr(), got)
		}
	}
}

func TestLeaseContext(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "ctx", distlock.WithTTL(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := l.Context(t.Context())
	defer cancel()
	servers[0].Pause()
	servers[1].Pause()
	defer servers[0].Resume()
	defer servers[1].Resume()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("lease context not cancelled after the lease was lost")
	}
	if cause := context.Cause(ctx); !errors.Is(cause, distlock.ErrLeaseLost) {
		t.Errorf("context.Cause: got %v; want ErrLeaseLost", cause)
	}
}

func TestDo(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := t.Context()

	boom := errors.New("boom")
	var seen *distlock.Lease
	err := c.Do(ctx, "do", func(ctx context.Context, l *distlock.Lease) error {
		seen = l
		if l.Err() != nil || ctx.Err() != nil {
			t.Errorf("inside Do: lease err %v, ctx err %v; want nil", l.Err(), ctx.Err())
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Do: got %v; want fn's error", err)
	}
	if !errors.Is(seen.Err(), distlock.ErrReleased) {
		t.Errorf("lease after Do: got %v; want ErrReleased", seen.Err())
	}
	noLockKeys(t, servers)

	// A panic in fn releases the lease, then goes on.
	func() {
		defer func() {
			if r := recover(); r != "oops" {
				t.Errorf("recovered %v; want the panic to continue", r)
			}
		}()
		c.Do(ctx, "do", func(context.Context, *distlock.Lease) error { panic("oops") })
	}()
	noLockKeys(t, servers)

	// A lease lost during fn cancels fn's context; Do reports the loss.
	err = c.Do(ctx, "do", func(ctx context.Context, l *distlock.Lease) error {
		servers[0].Pause()
		servers[1].Pause()
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), distlock.ErrLeaseLost) {
			t.Errorf("context.Cause in fn: got %v; want ErrLeaseLost", context.Cause(ctx))
		}
		return ctx.Err()
	}, distlock.WithTTL(400*time.Millisecond))
	servers[0].Resume()
	servers[1].Resume()
	if !errors.Is(err, distlock.ErrLeaseLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("Do with the lease lost: got %v; want ErrLeaseLost and fn's error", err)
	}
	noLockKeys(t, servers)
}

// Err never reports a lease as held past its validity, even in the first
// instant after the holder's process was frozen (SIGSTOP) past its TTL.
func TestErrAfterProcessFrozen(t *testing.T) {
	servers := masters(t, 3)
	cmd, stdin, out := startHolder(t, servers, "frozen", 500*time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // TTL is 500ms
	// Queue the question before the holder runs again, so that it asks
	// Err first thing on waking.
	fmt.Fprintln(stdin, "check")
	cmd.Process.Signal(syscall.SIGCONT)
	if !out.Scan() || !strings.Contains(out.Text(), distlock.ErrLeaseLost.Error()) {
		t.Errorf("holder's Err right after SIGCONT: got %q; want ErrLeaseLost", out.Text())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("holder: %v", err)
	}
}

// Extend with a shorter TTL shortens the validity too: the lease must not
// report itself held after its keys expire.
func TestExtendShorter(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "shorter", distlock.WithTTL(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(t.Context(), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if until := time.Until(l.Deadline()); until > 200*time.Millisecond {
		t.Errorf("Deadline after Extend to 200ms: %v from now; want <= 200ms", until)
	}
	// Renewals continue with the new TTL.
	time.Sleep(time.Second)
	if err := l.Err(); err != nil {
		t.Fatalf("Err after 1s with TTL 200ms: %v; want renewed", err)
	}
	for _, s := range servers {
		pttl, _ := s.Do("PTTL", "distlock:shorter")
		if n, _ := strconv.Atoi(pttl); n <= 0 || n > 200 {
			t.Errorf("master %s: PTTL %s; want in (0, 200]", s.Addr(), pttl)
		}
	}
	l.Release(t.Context())
}

// One master paused out of three must not cost the lease: the other two
// renew it.
func TestRenewalWithOneMasterPaused(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "one-paused", distlock.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	servers[2].Pause()
	defer servers[2].Resume()
	select {
	case <-l.Done():
		t.Fatalf("lease lost with one master of three paused: %v", l.Err())
	case <-time.After(3 * time.Second):
	}
	servers[2].Resume()
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// A lost lease's keys that remain on some master are deleted, so the next
// holder need not wait for them to expire.
func TestLostLeaseKeysDeleted(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "lost", distlock.WithTTL(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every master holds the key", func() bool {
		for _, s := range servers {
			if v, _ := s.Do("GET", "distlock:lost"); v == "" {
				return false
			}
		}
		return true
	})
	// A majority forgets the key; master 2 still has it.
	servers[0].Do("DEL", "distlock:lost")
	servers[1].Do("DEL", "distlock:lost")
	if err := l.Extend(t.Context(), 30*time.Second); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Fatalf("Extend: got %v; want ErrLeaseLost", err)
	}
	noLockKeys(t, servers)
	l2, err := c.TryAcquire(t.Context(), "lost")
	if err != nil {
		t.Fatalf("TryAcquire after the loss: %v", err)
	}
	l2.Release(t.Context())
}

// A lost lease lets this Client's next waiter go at once, not after its
// keys' deletion is answered: with master 2 paused, that answer would take
// until the TTL (30s); the waiter takes the lock on masters 0 and 1.
func TestLostLeasePassesTurnAtOnce(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ttl := distlock.WithTTL(30 * time.Second)
	l, err := c.Acquire(t.Context(), "lostturn", ttl)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every master holds the key", func() bool {
		for _, s := range servers {
			if v, _ := s.Do("GET", "distlock:lostturn"); v == "" {
				return false
			}
		}
		return true
	})
	next := make(chan error, 1)
	go func() {
		l2, err := c.Acquire(ctxTimeout(t, 20*time.Second), "lostturn", ttl)
		if err == nil {
			err = l2.Release(t.Context())
		}
		next <- err
	}()
	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			servers[2].Resume()
		}
	}()
	servers[0].Do("DEL", "distlock:lostturn")
	servers[1].Do("DEL", "distlock:lostturn")
	if err := l.Extend(t.Context(), 30*time.Second); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Fatalf("Extend: got %v; want ErrLeaseLost", err)
	}
	select {
	case err := <-next:
		if err != nil {
			t.Fatalf("waiter after the loss: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter still waiting 5s after the lease was lost; want it let go at once")
	}
	servers[2].Resume()
	resumed = true
	noLockKeys(t, servers)
}

// Close with a waiter queued behind a held lease leaves no keys behind.
func TestCloseWithQueuedWaiter(t *testing.T) {
	servers := masters(t, 3)
	c, err := distlock.New(distlock.Config{Nodes: redistest0(servers)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(t.Context(), "queued"); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	for range 3 {
		go func() {
			_, err := c.Acquire(context.Background(), "queued")
			errc <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	c.Close()
	for range 3 {
		if err := <-errc; !errors.Is(err, distlock.ErrClosed) {
			t.Errorf("queued Acquire after Close: got %v; want ErrClosed", err)
		}
	}
	noLockKeys(t, servers)
}

// Release with a context that has already ended (a deferred Release with
// a request's cancelled ctx) still deletes the keys, and its error says
// they were not confirmed, not "no quorum: granted by 0 masters", which a
// use test read as a lock stuck for its TTL. It matches the context's.
func TestReleaseWithEndedContext(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	l, err := c.Acquire(ctx, "ended")
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, "ended")
	cancel()
	err = l.Release(ctx)
	var q *distlock.QuorumError
	if !errors.As(err, &q) || !errors.Is(err, context.Canceled) {
		t.Errorf("Release with an ended ctx: %v; want a *QuorumError matching context.Canceled", err)
	} else if msg := err.Error(); !strings.Contains(msg, `release "ended": not confirmed: the caller's context ended`) || !strings.Contains(msg, "the deletes went out") || strings.Contains(msg, "no quorum") {
		t.Errorf("Release with an ended ctx: %q; want it to say the deletes went out unconfirmed, not 'no quorum'", msg)
	}
	if err := l.Err(); !errors.Is(err, distlock.ErrReleased) {
		t.Errorf("Err: got %v; want ErrReleased", err)
	}
	noLockKeys(t, servers)
	l2, err := c.Acquire(ctxTimeout(t, 2*time.Second), "ended")
	if err != nil {
		t.Fatalf("Acquire after Release with an ended ctx: %v", err)
	}
	l2.Release(t.Context())
}

// Release with the lease's own context (from Lease.Context, or the one Do
// passes fn) waits for the deletes and returns nil: that context ends
// because Release ends the lease, which is no reason to stop waiting.
func TestReleaseWithLeaseContext(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	var released error
	err := c.Do(ctx, "do", func(ctx context.Context, l *distlock.Lease) error {
		released = l.Release(ctx)
		return nil
	})
	if err != nil || released != nil {
		t.Errorf("Release with Do's ctx: got %v (Do: %v); want nil", released, err)
	}
	l, err := c.Acquire(ctx, "own")
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := l.Context(ctx)
	defer cancel()
	if err := l.Release(lctx); err != nil {
		t.Errorf("Release with the lease's Context: got %v; want nil", err)
	}
	noLockKeys(t, servers)
}

// Close while Do's fn runs: fn's context is cancelled with a cause that
// wraps ErrReleased and ErrClosed, and Do's error wraps ErrClosed ("calls
// in progress end with ErrClosed"; it returned fn's context.Canceled
// alone). Found by a use test.
func TestDoClosed(t *testing.T) {
	servers := masters(t, 3)
	c, err := distlock.New(distlock.Config{Nodes: redistest0(servers)})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	var cause error
	go func() {
		done <- c.Do(t.Context(), "do-closed", func(ctx context.Context, l *distlock.Lease) error {
			close(started)
			<-ctx.Done()
			cause = context.Cause(ctx)
			return ctx.Err()
		})
	}()
	<-started
	c.Close()
	err = <-done
	if !errors.Is(err, distlock.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Errorf("Do with Close during fn: %v; want fn's context.Canceled and ErrClosed", err)
	}
	if !errors.Is(cause, distlock.ErrReleased) || !errors.Is(cause, distlock.ErrClosed) {
		t.Errorf("fn's context cause: %v; want ErrReleased and ErrClosed", cause)
	}
	noLockKeys(t, servers)
}

// Close does not wait for the work under its leases: with Do's fn still
// running (it ignores its ctx), Close returns, and another Client takes
// the lock. Close's godoc says so, and that workers should be stopped and
// waited for first (a use test shut down with Close and saw the overlap).
func TestCloseDoesNotWaitForDo(t *testing.T) {
	servers := masters(t, 3)
	c, err := distlock.New(distlock.Config{Nodes: redistest0(servers)})
	if err != nil {
		t.Fatal(err)
	}
	other := newClient(t, servers, distlock.Config{})
	started, finish := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Do(t.Context(), "close-do", func(ctx context.Context, l *distlock.Lease) error {
			close(started)
			<-finish // work that does not watch ctx
			return nil
		})
	}()
	<-started
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		close(finish) // let fn, and then Close, end
		t.Fatal("Close still waiting after 5s with Do's fn running; want it to return without waiting for fn")
	}
	l, err := other.TryAcquire(t.Context(), "close-do")
	if err != nil {
		t.Errorf("TryAcquire by another Client after Close, Do's fn still running: %v; want the lock (Close does not wait for fn)", err)
	} else {
		l.Release(t.Context())
	}
	close(finish)
	if err := <-done; !errors.Is(err, distlock.ErrClosed) {
		t.Errorf("Do: %v; want ErrClosed", err)
	}
}
