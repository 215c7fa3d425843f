package redistest

import (
	"fmt"
	"strings"
)

// Waiting until a Cluster has settled: every node agreeing on the slots'
// owners, every replica in sync.

// settle waits until every running node reports cluster_state:ok, every
// slot has one owner that all of them agree on, and every replica is in
// sync with its primary.
func (c *Cluster) settle() error {
	return waitFor(clusterWait, "settled cluster", c.settled)
}

// settled reports why the cluster has not settled (see settle), or nil.
func (c *Cluster) settled() error {
	if err := c.slotsAgreed(); err != nil {
		return err
	}
	return c.replicasInSync()
}

// slotsAgreed reports why not every running node reports cluster_state:ok
// and sees the same owner of every slot, or nil.
func (c *Cluster) slotsAgreed() error {
	var want string
	for _, s := range c.Nodes {
		if !s.alive() {
			continue
		}
		if err := clusterStateOK(s); err != nil {
			return err
		}
		owners, err := c.owners(s)
		if err != nil {
			return err
		}
		if want == "" {
			want = owners
		} else if owners != want {
			return fmt.Errorf("%s sees the slots' owners as %s; another node as %s", s.Addr(), owners, want)
		}
	}
	return nil
}

// clusterStateOK reports why node s does not report cluster_state:ok, or
// nil.
func clusterStateOK(s *Server) error {
	info, err := s.Do("CLUSTER", "INFO")
	if err != nil {
		return err
	}
	if st := infoFields(info)["cluster_state"]; st != "ok" {
		return fmt.Errorf("%s: cluster_state:%s", s.Addr(), st)
	}
	return nil
}

// replicasInSync reports why a running replica is not in sync with its
// primary, or nil.
func (c *Cluster) replicasInSync() error {
	for _, s := range c.Nodes {
		if !s.alive() {
			continue
		}
		role, primary, err := c.role(s)
		if err != nil {
			return err
		}
		if role == "slave" {
			if err := inSync(s, primary); err != nil {
				return err
			}
		}
	}
	return nil
}

// owners returns, as one string to compare, the slot ranges and their
// primaries' ids as node s sees them (CLUSTER NODES).
func (c *Cluster) owners(s *Server) (string, error) {
	out, err := s.Do("CLUSTER", "NODES")
	if err != nil {
		return "", err
	}
	var ranges []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") {
			continue
		}
		for _, r := range f[8:] {
			if !strings.HasPrefix(r, "[") { // [slot->-id]: migrating
				ranges = append(ranges, r+"="+f[0])
			}
		}
	}
	sortStrings(ranges)
	return strings.Join(ranges, " "), nil
}

// sortStrings sorts a small slice in place (no sort import for one use).
func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
