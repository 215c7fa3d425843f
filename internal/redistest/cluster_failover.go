package redistest

import (
	"fmt"
)

// Failing a Cluster's shard over to its replica.

// FailoverShard fails primary over to its replica with CLUSTER FAILOVER
// run on the replica: a manual failover, which waits until the replica
// has caught up and pauses the primary's clients meanwhile, so that no
// write is lost. It waits until the cluster settles with the replica as
// primary and the old primary as its replica, and returns the new
// primary.
func (c *Cluster) FailoverShard(primary *Server) (*Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.Replica(primary)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("redistest: %s has no replica", primary.Addr())
	}
	if _, err := r.Do("CLUSTER", "FAILOVER"); err != nil {
		return nil, err
	}
	err = waitFor(clusterWait, r.Addr()+" promoted", func() error {
		role, _, err := c.role(r)
		if err != nil {
			return err
		}
		if role != "master" {
			return fmt.Errorf("%s is %s", r.Addr(), role)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, c.settle()
}
