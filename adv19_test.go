package distlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Adversarial read 19: a lease passed by a local handoff can be handed out
// up to three per-master timeouts T after its key was set on a master: the
// handoff to a master still answering the previous lease's acquire waits
// for that answer, then gets a T of its own (lease.go, settle), and the
// write-back one more. A later attempt (at most T) granted early on a
// write-back master and late on masters where the handoff lease's key
// expired, its release and write-back held in their sockets, would draw a
// lower token: possible while TTL < 4T. So the documented bound of
// P2_handout_order is every per-master timeout under a quarter of every
// TTL on the name (fencing.go). With T = 2s and TTL = 6.4s (T just under
// a third) this schedule gave Y counter 103 after L1's 202; at TTL = 8.4s
// (T under a quarter), the test below, Y's late commands come after its
// attempt ended, and it fails or draws above L1.
//
// 5 masters. Counters: master 0 at 200, the others at 100.
//  1. X's TryAcquire (L0): masters 1,2,3 grant at 101 (fast path); master 4
//     refuses (another value, which then expires); master 0's acquire is
//     held in its socket.
//  2. X releases L0 with a local waiter: handoff.lua swaps on 1,2,3 at once
//     (counters 102); X's connections to 2,3 then stall.
//  3. L0's acquire on master 0 arrives just within T (granted, 201); the
//     handoff to master 0 goes after it and is held, arriving just within
//     its own T (swap, 202). Token counter 202; write-back to 0,2,3,4; 0
//     confirms, 2,3 stalled, 4 held.
//  4. Y's TryAcquire: granted on master 4 (counter 101) before X's
//     write-back arrives there; its commands to 2,3 stall. Then X's
//     write-back reaches 4: L1 handed out (~3T after the handoff began),
//     and released (0 and 1 delete and raise; 2,3 stalled).
//  5. L1's keys on 2,3 expire (TTL after step 2). Y's commands to 2,3
//     arrive: past Y's T when TTL >= 4T.
func TestAdv19HandoffHandoutThreeTimeouts(t *testing.T) {
	const name = "adv19-handoff-three-timeouts"
	const T, TTL = 2 * time.Second, 8400 * time.Millisecond
	servers := masters(t, 5)
	ctx := ctxTimeout(t, 60*time.Second)
	acqSHA, hoSHA, fenceSHA := scriptSHA(t, "acquire"), scriptSHA(t, "handoff"), scriptSHA(t, "fence")

	x0, x23, x4 := redistest.NewLateDialer(), redistest.NewLateDialer(), redistest.NewLateDialer()
	y23 := redistest.NewLateDialer()
	for _, d := range []*redistest.LateDialer{x0, x23, x4, y23} {
		t.Cleanup(d.Close)
	}
	cfg := distlock.Config{NodeTimeout: T, TTL: TTL}
	x := dialedClient(t, servers, map[int]*redistest.LateDialer{0: x0, 2: x23, 3: x23, 4: x4}, cfg)
	y := dialedClient(t, servers, map[int]*redistest.LateDialer{2: y23, 3: y23}, cfg)

	// Counters: created by one lease of each Client, then set.
	cycleFenceKey(t, ctx, x, name, servers)
	fenceKey := cycleFenceKey(t, ctx, y, name, servers)
	for i, s := range servers {
		v := "100"
		if i == 0 {
			v = "200"
		}
		if _, err := s.Do("SET", fenceKey, v); err != nil {
			t.Fatal(err)
		}
	}
	// Another Client's key on master 4, about to expire.
	if _, err := servers[4].Do("SET", "distlock:"+name, "someone-else", "PX", "1000"); err != nil {
		t.Fatal(err)
	}

	// 1. L0.
	x0.PartitionOn([]byte(acqSHA))
	start := time.Now()
	l0, err := x.TryAcquire(ctx, name)
	if err != nil {
		t.Fatalf("L0: %v", err)
	}
	t.Logf("L0 counter %d; counters %v", l0.Token()>>6, counters(t, servers, fenceKey))
	x0.PartitionOn([]byte(hoSHA))
	x4.PartitionOn([]byte(fenceSHA))

	// 2. A local waiter, and the release that hands off to it.
	got := make(chan *distlock.Lease, 1)
	go func() {
		l, err := x.Acquire(ctx, name)
		if err != nil {
			t.Errorf("G2's Acquire: %v", err)
		}
		got <- l
	}()
	time.Sleep(100 * time.Millisecond)
	before2, _ := servers[2].Do("GET", "distlock:"+name)
	relDone := make(chan error, 1)
	go func() { relDone <- l0.Release(ctx) }()
	eventually(t, "handoff swapped on 2 and 3", func() bool {
		a, _ := servers[2].Do("GET", "distlock:"+name)
		b, _ := servers[3].Do("GET", "distlock:"+name)
		return a != before2 && a != "" && a == b
	})
	time.Sleep(200 * time.Millisecond) // its answers read
	x23.Partition()
	t.Logf("handoff swapped on 2,3 at %v; pttl %v", time.Since(start), pttls(t, servers, name))

	// 3. L0's acquire on master 0 just within T; the handoff there just
	// within its own T.
	time.Sleep(time.Until(start.Add(T - 150*time.Millisecond)))
	x0.Resume()
	resumed := time.Now()
	time.Sleep(time.Until(resumed.Add(T - 150*time.Millisecond)))
	x0.Resume()
	handed := time.Now()
	t.Logf("handoff answered on master 0 at %v; counters %v", time.Since(start), counters(t, servers, fenceKey))

	// 4. Y early on master 4, then X's write-back there.
	time.Sleep(time.Until(handed.Add(T - 450*time.Millisecond)))
	y23.Partition()
	yDone := make(chan result19, 1)
	go func() {
		l, err := y.TryAcquire(ctx, name)
		yDone <- result19{l, err}
	}()
	eventually(t, "Y's key on master 4", func() bool {
		v, _ := servers[4].Do("GET", "distlock:"+name)
		return v != "" && v != "someone-else"
	})
	t.Logf("Y granted on master 4 at %v; counters %v", time.Since(start), counters(t, servers, fenceKey))
	time.Sleep(time.Until(handed.Add(T - 200*time.Millisecond)))
	x4.Resume()
	var l1 *distlock.Lease
	select {
	case l1 = <-got:
	case <-time.After(3 * time.Second):
		t.Fatalf("no handoff lease; Release: %v", <-relDone)
	}
	if l1 == nil {
		t.Fatal("G2 got no lease")
	}
	t.Logf("L1 handed out at %v (handoff began ~%v): counter %d; Release(L0): %v", time.Since(start), 100*time.Millisecond, l1.Token()>>6, <-relDone)
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	t.Logf("Release(L1): %v", l1.Release(rctx))
	cancel()

	// 5. L1's keys on 2,3 expire; Y's commands arrive.
	time.Sleep(time.Until(start.Add(TTL)))
	eventually(t, "L1's keys expired on 2 and 3", func() bool {
		a, _ := servers[2].Do("EXISTS", "distlock:"+name)
		b, _ := servers[3].Do("EXISTS", "distlock:"+name)
		return a == "0" && b == "0"
	})
	t.Logf("L1's keys gone on 2,3 at %v", time.Since(start))
	y23.Resume()
	r := <-yDone
	if r.err != nil {
		t.Logf("Y's TryAcquire failed, as it may: %v", r.err)
		return
	}
	defer r.l.Release(context.Background())
	t.Logf("Y handed out at %v: counter %d; counters %v", time.Since(start), r.l.Token()>>6, counters(t, servers, fenceKey))
	if r.l.Token() <= l1.Token() {
		t.Errorf("Y acquired after L1 was handed out and released, with token %d (counter %d); L1's was %d (counter %d): tokens went backwards",
			r.l.Token(), r.l.Token()>>6, l1.Token(), l1.Token()>>6)
	}
}

type result19 struct {
	l   *distlock.Lease
	err error
}
