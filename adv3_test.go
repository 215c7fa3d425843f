package distlock_test

import (
	"errors"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// Third adversarial review, of 5840960 ("Release: excuse only keys that
// expired on time; bury where the acquire was never answered"). Each test
// describes the interleaving it drives and the claim it breaks, and fails
// on 5840960.

// Release buries (release.lua with a tombstone) on a master whose answer to the
// lease's acquire never came, and then ignores that master's answer
// altogether ("a buried master says only whether it deleted"). But bury's
// 0 says exactly what release.lua's 0 or -1 says: the key does not hold
// the lease's value there, now, and (the tombstone) never will. It is the
// "never granted" case of TestAdv2ReleaseMissesLossWhereAckIsZero again,
// through the unanswered master instead of a refusing one.
//
// Interleaving (3 masters; master 2 through a LateDialer):
//  1. Master 2 is partitioned; TryAcquire (TTL 5s) wins masters 0 and 1, a
//     bare majority, and returns. The partition breaks: the straggler's
//     answer is a read error, so master 2 is marked unanswered; rueidis
//     dials master 2 anew (the held acquire is never delivered here).
//  2. Another program overwrites the key on master 1 (or it expired
//     early: a clock jump, a master restarted empty).
//  3. Release, before the first renewal (TTL/3): master 0 deletes (1),
//     master 1 answers -1 (taken: counted), master 2's bury answers 0
//     (the key does not hold the value: not counted). 1 of 3 is not more
//     than n-quorum = 1: Release returns nil, though only master 0 of 3
//     held the lease's key.
//
// Breaks "Release reports ErrLeaseLost when a majority no longer held the
// keys | always".
func TestAdv3ReleaseIgnoresBuriedMaster(t *testing.T) {
	const name = "adv3-release-buried"
	servers := masters(t, 3)
	c, late := lateClient(t, servers, []int{2}, distlock.Config{NodeTimeout: 100 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)

	late.Partition()
	l, err := c.TryAcquire(ctx, name, distlock.WithTTL(5*time.Second))
	if err != nil {
		t.Fatalf("TryAcquire with master 2 partitioned: %v", err)
	}
	acquired := time.Now()
	time.Sleep(20 * time.Millisecond)
	late.Break()
	eventually(t, "master 2 answers again", func() bool {
		st, err := c.Status(ctx, name)
		return err == nil && st.Masters[2].Err == nil
	})
	if v := keyValue(t, servers[2], name); v != "" {
		t.Fatalf("master 2 holds %q; want nothing (its acquire is held)", v)
	}
	if _, err := servers[1].Do("SET", "distlock:"+name, "another", "PX", "10000"); err != nil {
		t.Fatal(err)
	}
	if time.Since(acquired) > 1500*time.Millisecond {
		t.Skip("inconclusive: the first renewal may have run (a slow run)")
	}
	err = l.Release(ctx)
	t.Logf("Release with the key held on master 0 alone: %v", err)
	if !errors.Is(err, distlock.ErrLeaseLost) {
		t.Fatalf("Release of a lease whose key only master 0 of 3 held (master 1 overwritten, master 2's acquire unanswered and its bury found no key): got %v; want ErrLeaseLost", err)
	}
}

// A successful local handoff buries the old value only where the
// handoff's own answer never came (handOff: s.unanswered). Where the
// old lease's acquire was never answered (l.unanswered) but the handoff's
// was ("no such key": {0, 0}), nothing buries the old value, and the old
// acquire, still on its way, sets it there afterwards for a whole TTL.
// The commit's comment "(A successful handoff does: the old value is
// dropped, so buried, everywhere.)" in adv2_test.go does not hold.
//
// Interleaving (3 masters; master 2 through a LateDialer):
//  1. Master 2 is partitioned; G1's TryAcquire (TTL 5s) wins masters 0
//     and 1 and returns; acquire.lua is held in master 2's socket. The
//     partition breaks (read error: l.unanswered = {2}); rueidis dials
//     master 2 anew.
//  2. G2 (same Client) waits. G1.Release hands over: handoff.lua swaps
//     the value on masters 0 and 1 and finds no key on master 2. G2's
//     lease holds masters 0 and 1; s.unanswered is empty, so no bury.
//  3. The old socket delivers: acquire.lua sets the key on master 2 with
//     G1's released value, PX 5000, and draws a counter.
//  4. G2.Release: masters 0 and 1 delete; master 2 answers -1 (taken).
//     The released G1's value stays on master 2 for the rest of its TTL.
//
// Breaks P4 (no lock key left behind once the masters answer), the case
// TestAdv2LateAcquireAfterRelease fixed for Release, through Release's
// other path.
func TestAdv3LateAcquireAfterHandoff(t *testing.T) {
	const name = "adv3-late-acquire-handoff"
	servers := masters(t, 3)
	c, late := lateClient(t, servers, []int{2}, distlock.Config{NodeTimeout: 100 * time.Millisecond})
	ctx := ctxTimeout(t, 20*time.Second)

	g1 := acquireMaster2Unanswered(t, ctx, c, late, name)
	got := acquireLater(t, ctx, c, name, distlock.WithTTL(5*time.Second))
	waitQueued(t, c, name)
	if err := g1.Release(ctx); err != nil {
		t.Fatalf("G1's Release (handoff): %v", err)
	}
	g2 := take(t, got, "G2")
	time.Sleep(100 * time.Millisecond) // the handoff's clean-ups, if any, have run
	if n := late.DeliverHeld(); n == 0 {
		t.Fatal("nothing was held: the acquire to master 2 was not queued")
	}
	t.Logf("old socket delivered after the handoff; PTTLs %v", pttls(t, servers, name))
	if err := g2.Release(ctx); err != nil {
		t.Fatalf("G2's Release: %v", err)
	}
	noLockKeys(t, servers)
}

// Release after a failed local handoff deletes the value the handoff gave
// the next holder (also) with release.lua, but on a master whose answer to
// the lease's acquire never came it buries instead (release.lua with a tombstone), which deletes
// only the lease's own value: where the handoff did swap the key there,
// the next value stays for a whole TTL.
//
// Interleaving (3 masters; master 2 through a LateDialer):
//  1. Master 2 is partitioned; G1's TryAcquire (TTL 5s) wins masters 0
//     and 1 and returns. The partition breaks (read error: l.unanswered =
//     {2}); then the old socket delivers: the acquire runs on master 2 and
//     sets G1's value there too (the "timed out but ran" case).
//  2. A waiter of another Client joins master 0's line; G2 (same Client as
//     G1) waits locally.
//  3. G1.Release: handoff.lua swaps the key to the next value on masters 1
//     and 2; master 0 answers {0, 1} (another Client's waiter is first).
//     The handoff fails; Release(also = next) deletes on masters 0 and 1,
//     and buries G1's value on master 2, which finds the next
//     value and leaves it.
//  4. The other Client's waiter, then G2, take and release the lock on
//     masters 0 and 1. Master 2 keeps the next value for its TTL.
//
// Breaks P4 (no lock key left behind once the masters answer).
func TestAdv3FailedHandoffNextLeftOnBuriedMaster(t *testing.T) {
	const name = "adv3-failed-handoff-bury"
	servers := masters(t, 3)
	c, late := lateClient(t, servers, []int{2}, distlock.Config{NodeTimeout: 100 * time.Millisecond})
	remote := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 20*time.Second)

	g1 := acquireMaster2Unanswered(t, ctx, c, late, name)
	if n := late.DeliverHeld(); n == 0 {
		t.Fatal("nothing was held: the acquire to master 2 was not queued")
	}
	everyMasterHolds(t, servers, name)

	gotRemote := acquireLater(t, ctx, remote, name, distlock.WithTTL(5*time.Second))
	waitWaiters(t, servers[0], name, 1)
	gotLocal := acquireLater(t, ctx, c, name, distlock.WithTTL(5*time.Second))
	waitQueued(t, c, name)
	if err := g1.Release(ctx); err != nil {
		t.Fatalf("G1's Release (handoff refused by master 0): %v", err)
	}
	t.Logf("after G1's Release; PTTLs %v", pttls(t, servers, name))
	r := take(t, gotRemote, "the other Client's waiter")
	if err := r.Release(ctx); err != nil {
		t.Fatalf("other Client's Release: %v", err)
	}
	g2 := take(t, gotLocal, "G2")
	if err := g2.Release(ctx); err != nil {
		t.Fatalf("G2's Release: %v", err)
	}
	t.Logf("after both released; PTTLs %v", pttls(t, servers, name))
	noLockKeys(t, servers)
}
