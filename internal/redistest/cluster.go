package redistest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// BeginMigration starts moving slot from its owner to the primary to:
// to imports it (CLUSTER SETSLOT IMPORTING) and the owner migrates it
// (MIGRATING). Until FinishMigration, the owner serves the keys of the
// slot that it still has and answers ASK for the others, and to serves
// a command that comes with ASKING when it has all of its keys, else
// answers TRYAGAIN. It returns the owner.
func (c *Cluster) BeginMigration(slot int, to *Server) (*Server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from, err := c.Owner(slot)
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, fmt.Errorf("redistest: slot %d is already on %s", slot, to.Addr())
	}
	sl := strconv.Itoa(slot)
	if _, err := to.Do("CLUSTER", "SETSLOT", sl, "IMPORTING", c.ids[from]); err != nil {
		return nil, err
	}
	if _, err := from.Do("CLUSTER", "SETSLOT", sl, "MIGRATING", c.ids[to]); err != nil {
		return nil, err
	}
	return from, nil
}

// FinishMigration moves every key of slot from the node migrating it to
// the node importing it (MIGRATE), then assigns the slot to the latter on
// every primary (CLUSTER SETSLOT NODE), and waits until every node agrees.
// From then on the old owner answers MOVED.
func (c *Cluster) FinishMigration(slot int, from, to *Server) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sl := strconv.Itoa(slot)
	for {
		out, err := from.Do("CLUSTER", "GETKEYSINSLOT", sl, "100")
		if err != nil {
			return err
		}
		if out == "" {
			break
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.port), "", "0", "5000", "KEYS"}
		args = append(args, strings.Split(out, "\n")...)
		if _, err := from.Do(args...); err != nil {
			return fmt.Errorf("redistest: MIGRATE slot %d from %s to %s: %w", slot, from.Addr(), to.Addr(), err)
		}
	}
	// The importing node first, then the one migrating: the documented
	// order, so that the slot never has no owner that serves it.
	if _, err := to.Do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[to]); err != nil {
		return err
	}
	if _, err := from.Do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[to]); err != nil {
		return err
	}
	ps, err := c.Primaries()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p != from && p != to {
			if _, err := p.Do("CLUSTER", "SETSLOT", sl, "NODE", c.ids[to]); err != nil {
				return err
			}
		}
	}
	return c.settle()
}

// MoveSlot moves slot to the primary to: BeginMigration then
// FinishMigration.
func (c *Cluster) MoveSlot(slot int, to *Server) error {
	from, err := c.BeginMigration(slot, to)
	if err != nil {
		return err
	}
	return c.FinishMigration(slot, from, to)
}

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

// alive reports whether s's process is running.
func (s *Server) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running()
}
