package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sentinel-managed groups: a primary, its replica and three Sentinels
// (redis-server --sentinel) that fail it over.

// Sentinel timings, short so that a test's failover takes seconds: a
// primary that does not answer for SentinelDownAfter is subjectively down,
// and with a second Sentinel agreeing (quorum 2) it is failed over. One
// Sentinel does not start another automatic failover of the group within
// 2·SentinelFailoverTimeout of the last one it started or voted for.
//
// Not shorter: a failover ends with CLIENT KILL TYPE normal on the new
// primary, which cuts the other Sentinels' connections, and a Sentinel
// connects again only after up to a second; with 500 ms they took the new
// primary for down and failed it over again.
const (
	SentinelDownAfter       = 2 * time.Second
	SentinelFailoverTimeout = 2 * time.Second
	// sentinelQuorum is how many Sentinels must agree that the primary is
	// down; a majority of the three must also elect the one that fails
	// it over.
	sentinelQuorum = 2
	// failoverWait bounds Failover, KillPrimary and WaitPrimary.
	failoverWait = 20 * time.Second
)

// SentinelGroupName is the master set name a group is monitored under
// unless SentinelOptions.Name says otherwise: rueidis.SentinelOption's
// MasterSet.
const SentinelGroupName = "distlock"

// SentinelOptions configures StartSentinelGroup.
type SentinelOptions struct {
	// Name is the master set name (SentinelGroupName when empty).
	Name string
	// Data configures the primary and the replica, as Options does a
	// Server (not TLS, nor User: the Sentinels must reach them).
	Data Options
}

// A SentinelGroup is a primary with one replica, monitored by three
// Sentinels. Which of the two data servers is the primary changes with
// each failover: ask Primary.
type SentinelGroup struct {
	// Name is the master set name the Sentinels monitor the group under.
	Name string
	// Servers are the group's data servers: Servers[0] started as the
	// primary, Servers[1] as its replica.
	Servers []*Server
	// Sentinels are the three Sentinel processes.
	Sentinels []*Server

	// mu serializes failovers, so that two never overlap, and guards
	// stalled.
	mu      sync.Mutex
	stalled *Server // the replica StallReplica paused, until promoted
}

// StartSentinelGroup starts a primary, a replica of it and three Sentinels
// monitoring them, and waits until the replica is in sync and every
// Sentinel knows the replica and the other two Sentinels, so that a
// failover can start at once. The test fails if that takes more than a
// few seconds; a cleanup stops every process.
func StartSentinelGroup(tb TB, opts SentinelOptions) *SentinelGroup {
	tb.Helper()
	if _, err := LookPath(); err != nil {
		tb.Fatal(err)
	}
	g := &SentinelGroup{Name: opts.Name}
	if g.Name == "" {
		g.Name = SentinelGroupName
	}
	tb.Cleanup(func() {
		for _, s := range append(g.Sentinels, g.Servers...) {
			if err := s.Stop(); err != nil {
				tb.Errorf("stopping %s: %v", s.Addr(), err)
			}
		}
	})
	if err := g.start(opts.Data); err != nil {
		tb.Fatal(err)
	}
	return g
}

// StartSentinelGroups starts n groups at once, as StartSentinelGroup
// starts one; each has its own master set name, SentinelGroupName
// followed by its index, unless opts.Name is set (then opts.Name and the
// index).
func StartSentinelGroups(tb TB, n int, opts SentinelOptions) []*SentinelGroup {
	tb.Helper()
	if _, err := LookPath(); err != nil {
		tb.Fatal(err)
	}
	name := opts.Name
	if name == "" {
		name = SentinelGroupName
	}
	groups := make([]*SentinelGroup, n)
	for i := range groups {
		groups[i] = &SentinelGroup{Name: name + strconv.Itoa(i)}
	}
	tb.Cleanup(func() {
		for _, g := range groups {
			for _, s := range append(g.Sentinels, g.Servers...) {
				if err := s.Stop(); err != nil {
					tb.Errorf("stopping %s: %v", s.Addr(), err)
				}
			}
		}
	})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = g.start(opts.Data) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return groups
}

// dataExtra are the arguments of a group's data servers: no delay before
// a replica's full sync (7.0 waits 5 s by default for more replicas), and
// a user of their own for the Sentinels (see StallReplica).
var dataExtra = []string{
	"--repl-diskless-sync-delay", "0",
	"--user", sentinelUser, "on", ">" + sentinelPass, "~*", "&*", "+@all",
}

// The user the Sentinels log in to the data servers as.
const (
	sentinelUser = "redistest-sentinel"
	sentinelPass = "redistest-sentinel-password"
)

func (g *SentinelGroup) start(data Options) error {
	primary, err := start(data, func(s *Server) error {
		s.extra = dataExtra
		return nil
	})
	if err != nil {
		return err
	}
	g.Servers = append(g.Servers, primary)
	replica, err := start(data, func(s *Server) error {
		s.extra = append(append([]string(nil), dataExtra...), "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
		return nil
	})
	if err != nil {
		return err
	}
	g.Servers = append(g.Servers, replica)
	if err := waitFor(10*time.Second, "replica "+replica.Addr()+" in sync", func() error {
		return inSync(replica, primary)
	}); err != nil {
		return err
	}

	sentinels := make([]*Server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range sentinels {
		wg.Go(func() {
			sentinels[i], errs[i] = start(Options{}, func(s *Server) error {
				s.sentinel = true
				s.conf = filepath.Join(s.dir, "sentinel.conf")
				conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
					"sentinel down-after-milliseconds %[1]s %[4]d\n"+
					"sentinel failover-timeout %[1]s %[5]d\n"+
					"sentinel parallel-syncs %[1]s 1\n"+
					"sentinel auth-user %[1]s %[6]s\n"+
					"sentinel auth-pass %[1]s %[7]s\n",
					g.Name, primary.port, sentinelQuorum,
					SentinelDownAfter.Milliseconds(), SentinelFailoverTimeout.Milliseconds(),
					sentinelUser, sentinelPass)
				return os.WriteFile(s.conf, []byte(conf), 0o600)
			})
		})
	}
	wg.Wait()
	for _, s := range sentinels {
		if s != nil {
			g.Sentinels = append(g.Sentinels, s)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Sentinels find each other through hello messages every 2 s, and
	// the replica through the primary's INFO.
	return waitFor(15*time.Second, "Sentinels that know each other and the replica", g.ready)
}

// ready reports why a failover could not start now, or nil.
func (g *SentinelGroup) ready() error {
	primary, err := g.Primary()
	if err != nil {
		return err
	}
	for _, s := range g.Sentinels {
		if _, err := s.Do("SENTINEL", "CKQUORUM", g.Name); err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr(), err)
		}
		out, err := s.Do("SENTINEL", "SENTINELS", g.Name)
		if err != nil {
			return err
		}
		if n := len(records(out)); n != len(g.Sentinels)-1 {
			return fmt.Errorf("sentinel %s knows %d other Sentinels; want %d", s.Addr(), n, len(g.Sentinels)-1)
		}
		out, err = s.Do("SENTINEL", "REPLICAS", g.Name)
		if err != nil {
			return err
		}
		// The flags alone: a Sentinel reads a replica's own view (its
		// role, its link) only every 10 s, which inSync reads at once.
		good := 0
		for _, r := range records(out) {
			if r["flags"] == "slave" {
				good++
			}
		}
		if good == 0 {
			return fmt.Errorf("sentinel %s knows no replica of %s that is up: %v", s.Addr(), primary.Addr(), records(out))
		}
	}
	for _, s := range g.Servers {
		if s != primary {
			if err := inSync(s, primary); err != nil {
				return err
			}
		}
	}
	return nil
}

// SentinelAddrs returns the Sentinels' addresses, the InitAddress of a
// rueidis.ClientOption whose Sentinel.MasterSet is the group's Name.
func (g *SentinelGroup) SentinelAddrs() []string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Primary returns the data server that the first Sentinel to answer names
// the primary.
func (g *SentinelGroup) Primary() (*Server, error) {
	var errs []error
	for _, s := range g.Sentinels {
		out, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return g.server(out)
	}
	return nil, fmt.Errorf("redistest: no Sentinel names the primary: %w", errors.Join(errs...))
}

// Replica returns the data server that is not the primary.
func (g *SentinelGroup) Replica() (*Server, error) {
	p, err := g.Primary()
	if err != nil {
		return nil, err
	}
	if p == g.Servers[0] {
		return g.Servers[1], nil
	}
	return g.Servers[0], nil
}

// server returns the data server at "host\nport" (GET-MASTER-ADDR-BY-NAME).
func (g *SentinelGroup) server(hostPort string) (*Server, error) {
	f := strings.Split(hostPort, "\n")
	if len(f) != 2 {
		return nil, fmt.Errorf("redistest: unexpected primary address %q", hostPort)
	}
	addr := net.JoinHostPort(f[0], f[1])
	for _, s := range g.Servers {
		if s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("redistest: primary %s is none of the group's servers", addr)
}
