package redistest

import (
	"testing"
	"time"
)

// A group fails over on request and when its primary is killed, and a
// killed primary comes back as a replica.
func TestSentinelGroup(t *testing.T) {
	start := time.Now()
	g := StartSentinelGroup(t, SentinelOptions{})
	t.Logf("started in %v", time.Since(start))
	p, err := g.Primary()
	if err != nil {
		t.Fatal(err)
	}
	if p != g.Servers[0] {
		t.Fatalf("primary %s; want %s", p.Addr(), g.Servers[0].Addr())
	}
	mustDo(t, p, "SET", "k", "1")

	start = time.Now()
	p2, err := g.Failover()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SENTINEL FAILOVER in %v", time.Since(start))
	if p2 != g.Servers[1] {
		t.Fatalf("after Failover primary %s; want %s", p2.Addr(), g.Servers[1].Addr())
	}
	wantGet(t, p2, "k", "1")
	start = time.Now()
	if err := g.WaitReady(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ready again in %v", time.Since(start))

	start = time.Now()
	p3, killed, err := g.KillPrimary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover after a kill in %v", time.Since(start))
	if p3 != g.Servers[0] || killed != g.Servers[1] {
		t.Fatalf("after KillPrimary primary %s, killed %s; want %s, %s", p3.Addr(), killed.Addr(), g.Servers[0].Addr(), g.Servers[1].Addr())
	}
	start = time.Now()
	if err := g.Rejoin(killed); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed primary back as a replica in %v", time.Since(start))
	if r, err := g.Replica(); err != nil || r != killed {
		t.Fatalf("Replica() = %v, %v; want %s", r, err, killed.Addr())
	}

	// A stalled replica, promoted, lacks what it held back.
	mustDo(t, p3, "SET", "k", "2")
	if err := g.WaitReady(); err != nil {
		t.Fatal(err)
	}
	if r, err := g.StallReplica(); err != nil || r != killed {
		t.Fatalf("StallReplica() = %v, %v; want %s", r, err, killed.Addr())
	}
	mustDo(t, p3, "SET", "k", "3")
	p4, err := g.Failover()
	if err != nil {
		t.Fatal(err)
	}
	wantGet(t, p4, "k", "2")
	wantGet(t, p3, "k", "2")       // a replica of p4 now
	mustDo(t, p4, "SET", "k", "4") // not paused any more
}
