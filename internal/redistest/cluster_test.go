package redistest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/keyslot"
)

// A cluster forms; a slot moves with its keys, the old owner answering
// ASK during the move and MOVED after it; a shard fails over to its
// replica with its keys.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, ClusterOptions{Replicas: true})
	t.Logf("started in %v", time.Since(start))
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes; want 6", len(c.Nodes))
	}
	ps, err := c.Primaries()
	if err != nil || len(ps) != 3 {
		t.Fatalf("Primaries() = %d, %v; want 3", len(ps), err)
	}
	key := "{x}k"
	slot := int(keyslot.Slot(key))
	from, err := c.Owner(slot)
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, from, "SET", key, "1")
	mustDo(t, from, "SET", "{x}other", "2")
	var to *Server
	for _, p := range ps {
		if p != from {
			to = p
			break
		}
	}

	if _, err := c.BeginMigration(slot, to); err != nil {
		t.Fatal(err)
	}
	if _, err := from.Do("GET", "{x}missing"); err == nil || !strings.Contains(err.Error(), "ASK "+strconv.Itoa(slot)+" "+to.Addr()) {
		t.Fatalf("GET of a missing key during the migration: %v; want ASK %d %s", err, slot, to.Addr())
	}
	wantGet(t, from, key, "1") // still here
	if err := c.FinishMigration(slot, from, to); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Owner(slot); err != nil || o != to {
		t.Fatalf("Owner after the move: %v, %v; want %s", o, err, to.Addr())
	}
	wantGet(t, to, key, "1")
	wantGet(t, to, "{x}other", "2")
	if _, err := from.Do("GET", key); err == nil || !strings.Contains(err.Error(), "MOVED "+strconv.Itoa(slot)+" "+to.Addr()) {
		t.Fatalf("GET on the old owner: %v; want MOVED", err)
	}

	start = time.Now()
	np, err := c.FailoverShard(to)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shard failover in %v", time.Since(start))
	if o, err := c.Owner(slot); err != nil || o != np || np == to {
		t.Fatalf("Owner after the failover: %v, %v; want %s", o, err, np.Addr())
	}
	wantGet(t, np, key, "1")
	if r, err := c.Replica(np); err != nil || r != to {
		t.Fatalf("Replica of the new primary: %v, %v; want %s", r, err, to.Addr())
	}
}
