package distlock_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Adversarial read 18: a release (or any command after the acquire) that
// overtakes the fence write-back on a master lets a later holder draw a
// lower token.
//
// The token argument (fencing.go): before a lease is handed out, a
// majority Q holds a counter >= its counter t; a later holder's majority
// meets Q, and INCRs there after t was written. What it leaves open is a
// master that granted the lease at a lower counter and whose write-back is
// still on its way: once the lease's key leaves that master (its
// release), a later acquire there INCRs from below t, and if the same
// acquire was granted on a master of Q before the write-back reached it,
// no master of its majority gave it more than t.
//
// The write-back is sent in a goroutine per master, and the lease is
// handed out once a majority holds t: the release's command to a master
// may be handed to rueidis before that master's write-back is (the
// goroutine not scheduled yet), or go on a new connection while the
// write-back sits in the old one's send queue. Either way the delete runs
// first. The conformance suite saw a token out of order once in a CI run
// (TestRueidislockTryWithContextMultipleLocker, no overlap).
//
// Interleaving (3 masters; counters 100 on master 0, fewer on 1 and 2):
//  1. Client Y's TryAcquire reaches master 2 only (its commands to masters
//     0 and 1 are stalled in their sockets): granted there, counter c2.
//  2. Client X's TryAcquire: master 0 grants at 101, master 1 at c1 < 101,
//     master 2 refuses (Y). The token's counter is 101; the write-back
//     goes to masters 1 and 2; master 2 confirms, so X has its majority
//     {0, 2}, and returns. Master 1's write-back is held in its socket.
//  3. Y's stalled command to master 0 arrives: refused (X holds it).
//  4. X's connection to master 1 breaks and rueidis dials anew; X
//     releases: the delete runs on masters 0 and 1 (master 1's counter is
//     still c1).
//  5. Y's stalled command to master 1 arrives: free, INCR gives c1+1,
//     granted. Y holds masters 1 and 2 with counters c1+1 and c2, both
//     below 101, and the write-back finds master 0 and 2 already higher.
//
// Y holds the lock after X released it, with a smaller token. The fix:
// release.lua raises the lock's fence counter to the released lease's
// counter as it deletes, so that no master the key leaves is below it.
func TestAdv18ReleaseOvertakesWriteBack(t *testing.T) {
	const name = "adv18-release-overtakes-write-back"
	servers := masters(t, 3)
	ctx := ctxTimeout(t, 30*time.Second)

	fenceSHA := scriptSHA(t, "fence")

	x, xLate := lateClient(t, servers, []int{1}, distlock.Config{})
	// Y's commands to masters 0 and 1 can be stalled, each on its own;
	// its per-master timeout outlasts the steps below.
	y0, y1 := redistest.NewLateDialer(), redistest.NewLateDialer()
	t.Cleanup(y0.Close)
	t.Cleanup(y1.Close)
	y := dialedClient(t, servers, map[int]*redistest.LateDialer{0: y0, 1: y1}, distlock.Config{NodeTimeout: 5 * time.Second, TTL: 30 * time.Second})

	// Counters: created by one lease, then master 0's raised by 100.
	fenceKey := cycleFenceKey(t, ctx, x, name, servers)
	if _, err := servers[0].Do("INCRBY", fenceKey, "100"); err != nil {
		t.Fatal(err)
	}

	// 1. Y reaches master 2 alone.
	y0.Partition()
	y1.Partition()
	type result struct {
		l   *distlock.Lease
		err error
	}
	yDone := make(chan result, 1)
	go func() {
		l, err := y.TryAcquire(ctx, name)
		yDone <- result{l, err}
	}()
	eventually(t, "Y's key on master 2", func() bool {
		v, _ := servers[2].Do("EXISTS", "distlock:"+name)
		return v == "1"
	})

	// 2. X wins masters 0 and 1; its write-back to master 1 is held.
	xLate.PartitionOn([]byte(fenceSHA))
	lx, err := x.TryAcquire(ctx, name)
	if err != nil {
		t.Fatalf("X's TryAcquire: %v", err)
	}
	counter := int64(lx.Token() >> 6)
	t.Logf("X holds with counter %d; counters now %v", counter, counters(t, servers, fenceKey))

	// 3. Y's command to master 0 arrives: refused.
	y0.Resume()
	time.Sleep(50 * time.Millisecond)

	// 4. X's connection to master 1 breaks; X releases over a new one.
	xLate.Break()
	eventually(t, "X reaches master 1 again", func() bool {
		st, err := x.Status(ctx, name)
		return err == nil && st.Masters[1].Err == nil
	})
	if err := lx.Release(ctx); err != nil {
		t.Fatalf("X's Release: %v", err)
	}
	got, err := servers[1].Do("GET", fenceKey)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.ParseInt(got, 10, 64); n < counter {
		t.Errorf("master 1's fence counter is %d once X's release deleted its key there; want at least X's counter %d", n, counter)
	}

	// 5. Y's command to master 1 arrives.
	y1.Resume()
	r := <-yDone
	xLate.DeliverHeld()
	if r.err != nil {
		t.Fatalf("Y's TryAcquire: %v", r.err)
	}
	defer r.l.Release(context.Background())
	if r.l.Token() <= lx.Token() {
		t.Errorf("Y acquired after X released, with token %d (counter %d); X's was %d (counter %d): tokens went backwards",
			r.l.Token(), r.l.Token()>>6, lx.Token(), counter)
	}
}

// counters returns key's value on each server, for logs.
func counters(t *testing.T, servers []*redistest.Server, key string) []string {
	t.Helper()
	var out []string
	for _, s := range servers {
		v, _ := s.Do("GET", key)
		out = append(out, v)
	}
	return out
}
