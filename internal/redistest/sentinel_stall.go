package redistest

import (
	"fmt"
	"strconv"
	"time"
)

// Stalling a Sentinel group's replica, so that a failover loses the
// writes it had not applied.

// StallReplica makes the replica stop applying what the primary sends
// (CLIENT PAUSE WRITE on it; it still answers PING and INFO, so the
// Sentinels still take it for a good replica), until a Failover or
// KillPrimary promotes it: then the writes it had not applied are lost,
// as in a failover while replication lags. It first waits, up to 5 s,
// for the replica to have every write the primary has. It returns the
// replica.
//
// CLIENT PAUSE WRITE also holds back PUBLISH, with which the Sentinels
// send their hello messages every 2 s, and every command behind it on
// that Sentinel's connection: its PINGs, and the failover's REPLICAOF NO
// ONE. So while the replica is stalled the Sentinels' user may not
// PUBLISH there: refused at once, a hello is tried again later and holds
// nothing back. The failover lifts both the moment the replica says it
// is the primary; Unstall lifts them without a failover.
func (g *SentinelGroup) StallReplica() (*Server, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, err := g.Primary()
	if err != nil {
		return nil, err
	}
	if g.stalled != nil {
		return nil, fmt.Errorf("redistest: replica %s is stalled already", g.stalled.Addr())
	}
	r := g.Servers[0]
	if p == r {
		r = g.Servers[1]
	}
	// Writes in flight (a release that returned at a majority, a
	// renewal) may still be on their way to r: wait until it has them
	// all, so that the stall loses only what is written after it.
	if err := waitFor(5*time.Second, "replica "+r.Addr()+" in sync with "+p.Addr(), func() error { return inSync(r, p) }); err != nil {
		return nil, err
	}
	if _, err := r.Do("ACL", "SETUSER", sentinelUser, "-publish"); err != nil {
		return nil, err
	}
	if _, err := r.Do("CLIENT", "PAUSE", strconv.FormatInt(stallFor.Milliseconds(), 10), "WRITE"); err != nil {
		return nil, err
	}
	g.stalled = r
	return r, nil
}

// unstall lifts StallReplica's pause and refusal on r.
func unstall(r *Server) error {
	_, err := r.Do("CLIENT", "UNPAUSE")
	if _, err2 := r.Do("ACL", "SETUSER", sentinelUser, "+publish"); err == nil {
		err = err2
	}
	return err
}

// stallFor bounds a stall: CLIENT PAUSE lifts itself then.
const stallFor = 30 * time.Second

// Unstall lifts StallReplica's pause, if any: the replica then applies
// what it had held back.
func (g *SentinelGroup) Unstall() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stalled == nil {
		return nil
	}
	err := unstall(g.stalled)
	g.stalled = nil
	return err
}

// unstallWhenPromoted waits until the stalled replica, if any, says it is
// the primary, and lifts its pause at once. g.mu is held.
func (g *SentinelGroup) unstallWhenPromoted() error {
	r := g.stalled
	if r == nil {
		return nil
	}
	g.stalled = nil
	deadline := time.Now().Add(failoverWait)
	for {
		role, err := infoField(r, "replication", "role")
		if err == nil && role == "master" {
			return unstall(r)
		}
		if time.Now().After(deadline) {
			unstall(r)
			return fmt.Errorf("redistest: stalled replica %s not promoted after %v (role %s, %v)", r.Addr(), failoverWait, role, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
