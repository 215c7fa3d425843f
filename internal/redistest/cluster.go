package redistest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Redis Cluster: primaries that share the 16384 hash slots, each
// optionally with a replica, with resharding of a slot and a shard's
// failover on request.

// ClusterNodeTimeout is the cluster-node-timeout of the harness's clusters:
// a primary that does not answer for this long is failed over by its
// replica (1 s here; 15 s by default).
const ClusterNodeTimeout = time.Second

// clusterWait bounds how long StartCluster, MoveSlot and FailoverShard wait
// for the cluster to settle.
const clusterWait = 20 * time.Second

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Shards is the number of primaries (3 when 0). The slots are split
	// among them in equal ranges, in order.
	Shards int
	// Replicas gives each primary one replica when true.
	Replicas bool
	// Node configures every node, as Options does a Server (not TLS, nor
	// User).
	Node Options
}

// A Cluster is a Redis Cluster of real redis-server processes.
type Cluster struct {
	// Nodes are every node: the primaries as started first, in the order
	// of their slot ranges, then their replicas (Nodes[Shards+i] started
	// as the replica of Nodes[i]). Roles change with FailoverShard: ask
	// Owner, Primary or Role.
	Nodes  []*Server
	shards int

	mu  sync.Mutex         // serializes MoveSlot and FailoverShard
	ids map[*Server]string // each node's id, fixed for its life
}

// StartCluster starts a cluster, assigns the slots, joins the nodes (and
// replicas to their primaries) and waits until every node reports
// cluster_state:ok and agrees on every slot's owner. A cleanup stops every
// process.
func StartCluster(tb TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if _, err := LookPath(); err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{shards: opts.Shards, ids: make(map[*Server]string)}
	if c.shards == 0 {
		c.shards = 3
	}
	n := c.shards
	if opts.Replicas {
		n *= 2
	}
	c.Nodes = make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { c.Nodes[i], errs[i] = startClusterNode(opts.Node) })
	}
	wg.Wait()
	tb.Cleanup(func() {
		for _, s := range c.Nodes {
			if s == nil {
				continue
			}
			if err := s.Stop(); err != nil {
				tb.Errorf("stopping %s: %v", s.Addr(), err)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	if err := c.form(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// startClusterNode starts one node with cluster mode on. Its cluster bus
// gets a port of its own (--cluster-port; Redis would take port+10000,
// which may be taken or beyond 65535).
func startClusterNode(opts Options) (*Server, error) {
	return start(opts, func(s *Server) error {
		bus, err := freePort()
		if err != nil {
			return err
		}
		s.extra = []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(ClusterNodeTimeout.Milliseconds(), 10),
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-allow-replica-migration", "no",
			"--repl-diskless-sync-delay", "0",
		}
		return nil
	})
}

// form assigns the slots, introduces the nodes to each other and makes
// the replicas, then waits for the cluster to settle.
func (c *Cluster) form() error {
	for _, s := range c.Nodes {
		id, err := s.Do("CLUSTER", "MYID")
		if err != nil {
			return err
		}
		c.ids[s] = id
	}
	for i := range c.shards {
		lo, hi := i*16384/c.shards, (i+1)*16384/c.shards-1
		if _, err := c.Nodes[i].Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return fmt.Errorf("redistest: ADDSLOTSRANGE %d %d on %s: %w", lo, hi, c.Nodes[i].Addr(), err)
		}
	}
	for _, s := range c.Nodes[1:] {
		if _, err := c.Nodes[0].Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.port), strconv.Itoa(busPort(s))); err != nil {
			return err
		}
	}
	// A replica can follow its primary only once it knows it.
	err := waitFor(clusterWait, "nodes that know each other", func() error {
		for _, s := range c.Nodes {
			info, err := s.Do("CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if got := infoFields(info)["cluster_known_nodes"]; got != strconv.Itoa(len(c.Nodes)) {
				return fmt.Errorf("%s knows %s nodes; want %d", s.Addr(), got, len(c.Nodes))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, s := range c.Nodes[c.shards:] {
		if _, err := s.Do("CLUSTER", "REPLICATE", c.ids[c.Nodes[i]]); err != nil {
			return fmt.Errorf("redistest: CLUSTER REPLICATE on %s: %w", s.Addr(), err)
		}
	}
	return c.settle()
}

// busPort returns the cluster bus port a node was started with.
func busPort(s *Server) int {
	for i := 0; i+1 < len(s.extra); i++ {
		if s.extra[i] == "--cluster-port" {
			p, _ := strconv.Atoi(s.extra[i+1])
			return p
		}
	}
	return s.port + 10000
}
