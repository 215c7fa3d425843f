package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// TestStatusFreeHeldFree reads a lock before, while and after a lease
// holds it.
func TestStatusFreeHeldFree(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 20*time.Second)

	st, err := c.Status(ctx, "status/job")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != distlock.StateFree || st.Agree != 3 || st.Quorum != 2 || st.TTL != 0 {
		t.Errorf("before Acquire: got State %v, Agree %d, Quorum %d, TTL %v; want free, 3, 2, 0", st.State, st.Agree, st.Quorum, st.TTL)
	}
	if len(st.Masters) != 3 {
		t.Fatalf("got %d master entries; want 3", len(st.Masters))
	}
	for i, m := range st.Masters {
		if m.Err != nil || m.Held || m.Value != "" || m.Fence != 0 || m.Addr != servers[i].URL() {
			t.Errorf("master %d before Acquire: got %+v; want free, fence 0, Addr %s", i, m, servers[i].URL())
		}
	}

	l, err := c.Acquire(ctx, "status/job", distlock.WithTTL(5*time.Second))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	// A straggler may still be granting when Acquire returns: wait until
	// all three masters hold the key.
	eventually(t, "all 3 masters hold the lock", func() bool {
		st, err = c.Status(ctx, "status/job")
		return err == nil && st.Agree == 3
	})
	if st.State != distlock.StateHeld || st.TTL <= 0 || st.TTL > 5*time.Second {
		t.Errorf("while held: got State %v, TTL %v; want held, TTL in (0, 5s]", st.State, st.TTL)
	}
	counter := int64(l.Token() >> 6)
	atCounter := 0
	for i, m := range st.Masters {
		if m.Err != nil || !m.Held || m.Value == "" || m.Value != st.Masters[0].Value || m.TTL <= 0 || m.TTL > 5*time.Second || m.Fence < 1 {
			t.Errorf("master %d while held: got %+v; want held by one value, TTL in (0, 5s], fence >= 1", i, m)
		}
		if m.Fence == counter {
			atCounter++
		}
	}
	if atCounter < 2 {
		t.Errorf("fence counter %d (token %d) on %d masters; want a majority", counter, l.Token(), atCounter)
	}

	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	st, err = c.Status(ctx, "status/job")
	if err != nil || st.State != distlock.StateFree || st.Agree != 3 {
		t.Errorf("after Release: got State %v, Agree %d, err %v; want free, 3, nil", st.State, st.Agree, err)
	}
	for i, m := range st.Masters {
		if m.Fence < counter {
			t.Errorf("master %d after Release: fence %d; want >= %d (counters never go back)", i, m.Fence, counter)
		}
	}
	noLockKeys(t, servers)
}

// TestStatusVerdict checks the majority's verdict on keys written
// directly: the TTL of a held lock is the Quorum-th longest, and masters
// that disagree make it unknown.
func TestStatusVerdict(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 20*time.Second)
	set := func(i int, value, px string) {
		t.Helper()
		if _, err := servers[i].Do("SET", "distlock:status/v", value, "PX", px); err != nil {
			t.Fatal(err)
		}
	}

	set(0, "a", "60000")
	set(1, "a", "30000")
	set(2, "a", "1000")
	st, err := c.Status(ctx, "status/v")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != distlock.StateHeld || st.Agree != 3 || st.TTL <= 20*time.Second || st.TTL > 30*time.Second {
		t.Errorf("held with TTLs 60s, 30s, 1s: got State %v, Agree %d, TTL %v; want held, 3, about 30s", st.State, st.Agree, st.TTL)
	}

	set(1, "b", "60000")
	if _, err := servers[2].Do("DEL", "distlock:status/v"); err != nil {
		t.Fatal(err)
	}
	st, err = c.Status(ctx, "status/v")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != distlock.StateUnknown || st.Agree != 1 || st.TTL != 0 {
		t.Errorf("a, b, free: got State %v, Agree %d, TTL %v; want unknown, 1, 0", st.State, st.Agree, st.TTL)
	}
	if st.Masters[0].Value != "a" || st.Masters[1].Value != "b" || st.Masters[2].Held {
		t.Errorf("a, b, free: got masters %+v", st.Masters)
	}

	set(2, "b", "60000")
	if st, err = c.Status(ctx, "status/v"); err != nil {
		t.Fatal(err)
	}
	if st.State != distlock.StateHeld || st.Agree != 2 {
		t.Errorf("a, b, b: got State %v, Agree %d; want held, 2", st.State, st.Agree)
	}

	// A key of the wrong type is that master's error, not the call's.
	if _, err := servers[0].Do("DEL", "distlock:status/v"); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[0].Do("LPUSH", "distlock:status/v", "x"); err != nil {
		t.Fatal(err)
	}
	st, err = c.Status(ctx, "status/v")
	if err != nil || st.Masters[0].Err == nil || st.State != distlock.StateHeld {
		t.Errorf("wrong type on master 0: got State %v, master 0 %+v, err %v; want held, master 0 with an error, nil", st.State, st.Masters[0], err)
	}
	for _, s := range servers {
		s.Do("DEL", "distlock:status/v")
	}
}

// TestStatusMastersDown: unreachable or paused masters are reported in
// their entries, the verdict needs a majority, and nothing waits longer
// than DialTimeout.
func TestStatusMastersDown(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{DialTimeout: 500 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := c.Acquire(ctx, "status/down")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	defer l.Release(ctx)

	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	defer servers[2].Resume()
	start := time.Now()
	st, err := c.Status(ctx, "status/down")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Status with a paused master took %v; want about DialTimeout (500ms)", d)
	}
	if err != nil || st.State != distlock.StateHeld || st.Masters[2].Err == nil || st.Masters[2].Held {
		t.Errorf("master 2 paused: got State %v, master 2 %+v, err %v; want held, master 2 with an error", st.State, st.Masters[2], err)
	}

	if err := servers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	st, err = c.Status(ctx, "status/down")
	if err != nil || st.State != distlock.StateUnknown || st.Agree != 1 || st.Masters[1].Err == nil {
		t.Errorf("one master of 3 answering: got State %v, Agree %d, master 1 %+v, err %v; want unknown, 1, master 1 with an error", st.State, st.Agree, st.Masters[1], err)
	}
}

// TestStatusErrors: bad names, an ended ctx and a closed Client are the
// call's errors.
func TestStatusErrors(t *testing.T) {
	servers := masters(t, 1)
	c, err := distlock.New(distlock.Config{Nodes: redistest0(servers)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(t.Context(), ""); err == nil {
		t.Error("Status of an empty name: got nil error")
	}
	if _, err := c.Status(t.Context(), "fence:x"); err == nil {
		t.Error("Status of a reserved name: got nil error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Status(ctx, "status/e"); !errors.Is(err, context.Canceled) {
		t.Errorf("Status with a cancelled ctx: got %v; want context.Canceled", err)
	}
	c.Close()
	if _, err := c.Status(t.Context(), "status/e"); !errors.Is(err, distlock.ErrClosed) {
		t.Errorf("Status after Close: got %v; want ErrClosed", err)
	}
}

func TestLockStateString(t *testing.T) {
	for s, want := range map[distlock.LockState]string{distlock.StateUnknown: "unknown", distlock.StateFree: "free", distlock.StateHeld: "held", 7: "LockState(7)"} {
		if got := s.String(); got != want {
			t.Errorf("LockState(%d).String() = %q; want %q", int(s), got, want)
		}
	}
}

// Status shows what each master holds for a lock, and the majority's
// verdict; a tool can print it, never decide from it to take the lock.
func ExampleClient_Status() {
	nodes, stop := masterURLs()
	defer stop()

	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	l, err := c.Acquire(ctx, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Name, st.State, "by a majority:", st.Agree >= st.Quorum)
	for _, m := range st.Masters {
		if m.Err == nil && m.Held && m.Value != "" {
			fmt.Println("a master holds it, expiring within the TTL:", m.TTL <= distlock.DefaultTTL)
			break
		}
	}

	l.Release(ctx)
	st, _ = c.Status(ctx, "nightly-report")
	fmt.Println(st.Name, st.State)
	// Output:
	// nightly-report held by a majority: true
	// a master holds it, expiring within the TTL: true
	// nightly-report free
}
