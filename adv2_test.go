package distlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Second adversarial review, of 5c2af93 ("Fixes for five breaks an
// adversarial read found in the new protocol"): handoff with a fresh value,
// tombstones for unanswered attempts, unknownTTL, and Release counting a
// gone or taken key only while that master's last answer still guaranteed
// it. Each test describes the interleaving it drives and the claim it
// breaks.

// Release counts a master's "gone" or "taken" answer as a sign of loss only
// while l.acks[i] > now (lease.go, release). But acks[i] is 0 for a master
// that never granted the acquire, and for one whose renewal already said
// the key was gone (renew.go, answered: case 0, -1 sets acks[i] = 0): there
// the key is certainly not held, yet the answer is not counted. A lease
// held on a bare majority that then loses one of its masters is released
// with nil, although only a minority held its keys when Release came (and
// another Client may hold the lock on the rest).
//
// Interleaving, "never granted" (3 masters, all up):
//  1. Master 2 holds the key with another value (another Client's
//     leftover, or a holder that is about to lose master 0 and 1).
//  2. TryAcquire wins masters 0 and 1 (a bare majority); master 2 answers
//     held: acks[2] = 0.
//  3. The key on master 1 is overwritten by another program (or it
//     expired early: a clock jump, a master restarted empty).
//  4. Release: master 0 deletes (1), master 1 answers -1 (taken, acks[1]
//     still in the future: counted), master 2 answers -1 (taken, acks[2] =
//     0: not counted). 1 of 3 not held is not more than n-quorum = 1, so
//     Release returns nil. Only master 0 held the lease's key.
//
// Interleaving, "renewal saw gone" (3 masters, all up, TTL 3s):
//  1. The lease holds on every master. The key on master 1 is deleted;
//     the first renewal (at 1s) hears "gone" there: acks[1] = 0, and the
//     lease stays valid on masters 0 and 2.
//  2. The key on master 2 is deleted too, and another Client takes the
//     lock on masters 1 and 2.
//  3. Release: master 1's "taken" is not counted (acks[1] = 0), master 2's
//     is: 1 of 3, Release returns nil while another Client holds the lock.
//
// Breaks docs/safety.md's claim "Release reports ErrLeaseLost when a majority
// no longer held the keys, and only then | always" (P5's other half;
// before 5c2af93 both cases reported ErrLeaseLost, TestReleaseOfLostLease's
// count).
func TestAdv2ReleaseMissesLossWhereAckIsZero(t *testing.T) {
	t.Run("never granted", func(t *testing.T) {
		const name = "adv2-release-never-granted"
		servers := masters(t, 3)
		c := newClient(t, servers, distlock.Config{})
		ctx := ctxTimeout(t, 10*time.Second)
		if _, err := servers[2].Do("SET", "distlock:"+name, "someone-else", "PX", "10000"); err != nil {
			t.Fatal(err)
		}
		l, err := c.TryAcquire(ctx, name, distlock.WithTTL(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "masters 0 and 1 hold the lease's key", func() bool {
			return keyValue(t, servers[0], name) != "" && keyValue(t, servers[1], name) == keyValue(t, servers[0], name)
		})
		if _, err := servers[1].Do("SET", "distlock:"+name, "another", "PX", "10000"); err != nil {
			t.Fatal(err)
		}
		err = l.Release(ctx)
		t.Logf("Release with the key held on master 0 alone: %v", err)
		if !errors.Is(err, distlock.ErrLeaseLost) {
			t.Fatalf("Release of a lease whose key only master 0 of 3 held (master 1 overwritten, master 2 never granted): got %v; want ErrLeaseLost", err)
		}
	})
	t.Run("renewal saw gone", func(t *testing.T) {
		const name = "adv2-release-renewal-gone"
		const ttl = 3 * time.Second
		servers := masters(t, 3)
		c := newClient(t, servers, distlock.Config{})
		other := newClient(t, servers, distlock.Config{})
		ctx := ctxTimeout(t, 20*time.Second)
		l, err := c.Acquire(ctx, name, distlock.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		everyMasterHolds(t, servers, name)
		acquired := time.Now()
		if _, err := servers[1].Do("DEL", "distlock:"+name); err != nil {
			t.Fatal(err)
		}
		// The first renewal (TTL/3) renews masters 0 and 2, and hears
		// "gone" from master 1.
		time.Sleep(time.Until(acquired.Add(ttl/3 + 300*time.Millisecond)))
		if err := l.Err(); err != nil {
			t.Fatalf("lease after its renewal (masters 0 and 2 renewed): %v", err)
		}
		if _, err := servers[2].Do("DEL", "distlock:"+name); err != nil {
			t.Fatal(err)
		}
		l2, err := other.TryAcquire(ctx, name)
		if err != nil {
			t.Fatalf("other Client's TryAcquire on masters 1 and 2: %v", err)
		}
		defer l2.Release(context.Background())
		err = l.Release(ctx)
		t.Logf("Release while another Client holds masters 1 and 2: %v", err)
		if !errors.Is(err, distlock.ErrLeaseLost) {
			t.Fatalf("Release while another Client (token %d) holds the lock on masters 1 and 2: got %v; want ErrLeaseLost", l2.Token(), err)
		}
	})
}

// A lease's own acquire, delivered late over a replaced connection, lands
// after the lease's Release and sets the key for a whole TTL. 5c2af93 buries
// (release.lua with a tombstone: a bury) only a failed attempt's value where the
// answer never came; a successful acquire's stragglers are only waited for
// (Lease.settle), and a straggler that failed is forgotten: Release sends
// release.lua there, which the late acquire overtakes. The same holds for a
// lost lease (the reaper's releaseAll) and for a failed local handoff
// (Release's release with also = next): none buries the lease's value
// where its acquire's answer never came. (A successful handoff does: the
// old value is dropped, so buried, everywhere.)
//
// Interleaving (3 masters; master 2 through a LateDialer):
//  1. Master 2 is partitioned; TryAcquire (TTL 5s) wins masters 0 and 1
//     and returns; acquire.lua is held in master 2's socket.
//  2. The partition breaks: the straggler's answer is a read error;
//     rueidis dials master 2 anew.
//  3. Release: settle reads the error, release.lua runs on all three
//     (master 2: gone). Release returns nil.
//  4. The old socket delivers: acquire.lua sets the key on master 2 with
//     the released lease's value, PX 5000, and draws a counter.
//
// Breaks P4 (no lock key left behind once the masters answer): the key
// stays on master 2 for the whole TTL with no lease holding it. With two
// such masters of five, or with master 2 among the majority another
// Client needs while one master is down, the lock is refused (ErrLocked)
// for the TTL.
func TestAdv2LateAcquireAfterRelease(t *testing.T) {
	const name = "adv2-late-acquire-release"
	servers := masters(t, 3)
	c, late := lateClient(t, servers, []int{2}, distlock.Config{NodeTimeout: 100 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)

	l := acquireMaster2Unanswered(t, ctx, c, late, name)
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n := late.DeliverHeld(); n == 0 {
		t.Fatal("nothing was held: the acquire to master 2 was not queued")
	}
	t.Logf("old socket delivered after Release; PTTLs %v", pttls(t, servers, name))
	noLockKeys(t, servers)
}

// acquireMaster2Unanswered takes name with a TTL of 5s on c, whose
// connection to master 2 goes through late, while master 2 is partitioned:
// the lease wins masters 0 and 1, and its acquire to master 2 is held in a
// socket that late then breaks. It returns once c reaches master 2 again
// over a new connection; late still holds the acquire (DeliverHeld).
func acquireMaster2Unanswered(t *testing.T, ctx context.Context, c *distlock.Client, late *redistest.LateDialer, name string) *distlock.Lease {
	t.Helper()
	late.Partition()
	l, err := c.TryAcquire(ctx, name, distlock.WithTTL(5*time.Second))
	if err != nil {
		t.Fatalf("TryAcquire with master 2 partitioned: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // acquire.lua is in master 2's socket
	late.Break()
	eventually(t, "master 2 answers again", func() bool {
		st, err := c.Status(ctx, name)
		return err == nil && st.Masters[2].Err == nil
	})
	return l
}
