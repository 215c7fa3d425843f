package redistest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Asking a Cluster which node is what: addresses, ids, slot owners,
// primaries and replicas.

// role returns s's role, "master" or "slave", and for a replica the node
// it replicates.
func (c *Cluster) role(s *Server) (string, *Server, error) {
	info, err := s.Do("INFO", "replication")
	if err != nil {
		return "", nil, err
	}
	f := infoFields(info)
	if f["role"] != "slave" {
		return f["role"], nil, nil
	}
	for _, p := range c.Nodes {
		if strconv.Itoa(p.port) == f["master_port"] {
			return "slave", p, nil
		}
	}
	return "", nil, fmt.Errorf("redistest: %s replicates port %s, not a node of the cluster", s.Addr(), f["master_port"])
}

// Addrs returns every node's address: the InitAddress of a
// rueidis.ClientOption for the cluster.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// ID returns node s's cluster node id.
func (c *Cluster) ID(s *Server) string { return c.ids[s] }

// Owner returns the primary that serves slot, as the first node to
// answer sees it (CLUSTER SHARDS is 7.0 only; CLUSTER NODES is read).
func (c *Cluster) Owner(slot int) (*Server, error) {
	var errs []error
	for _, s := range c.Nodes {
		if !s.alive() {
			continue
		}
		out, err := s.Do("CLUSTER", "NODES")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			for _, r := range f[8:] {
				if strings.HasPrefix(r, "[") {
					continue
				}
				lo, hi, _ := strings.Cut(r, "-")
				l, _ := strconv.Atoi(lo)
				h := l
				if hi != "" {
					h, _ = strconv.Atoi(hi)
				}
				if l <= slot && slot <= h {
					return c.byID(f[0])
				}
			}
		}
		return nil, fmt.Errorf("redistest: %s knows no owner of slot %d", s.Addr(), slot)
	}
	return nil, fmt.Errorf("redistest: no node answers: %w", errors.Join(errs...))
}

func (c *Cluster) byID(id string) (*Server, error) {
	for s, sid := range c.ids {
		if sid == id {
			return s, nil
		}
	}
	return nil, fmt.Errorf("redistest: node %s is not one of the cluster's", id)
}

// Primaries returns the nodes that are primaries now, in the order of
// Nodes.
func (c *Cluster) Primaries() ([]*Server, error) {
	var ps []*Server
	for _, s := range c.Nodes {
		if !s.alive() {
			continue
		}
		role, _, err := c.role(s)
		if err != nil {
			return nil, err
		}
		if role == "master" {
			ps = append(ps, s)
		}
	}
	return ps, nil
}

// Replica returns the replica of primary, or nil when it has none.
func (c *Cluster) Replica(primary *Server) (*Server, error) {
	for _, s := range c.Nodes {
		if s == primary || !s.alive() {
			continue
		}
		role, p, err := c.role(s)
		if err != nil {
			return nil, err
		}
		if role == "slave" && p == primary {
			return s, nil
		}
	}
	return nil, nil
}
