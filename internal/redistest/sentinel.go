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

// Failover asks a Sentinel to fail the primary over to the replica
// (SENTINEL FAILOVER: no agreement needed, the old primary is alive and
// becomes a replica) and waits until every Sentinel names the new primary
// and it says so itself (role:master). It returns the new primary.
// Replication is asynchronous: writes the replica had not received are
// lost. The replica must be in sync (it is after StartSentinelGroup and
// every Failover, but a killed primary must be restarted and have
// synced first: WaitReady).
func (g *SentinelGroup) Failover() (*Server, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, err := g.Primary()
	if err != nil {
		return nil, err
	}
	// A Sentinel refuses while it has not seen a good replica recently
	// (NOGOODSLAVE) or another failover is still in progress (INPROG).
	err = waitFor(failoverWait, "SENTINEL FAILOVER accepted", func() error {
		_, err := g.Sentinels[0].Do("SENTINEL", "FAILOVER", g.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := g.unstallWhenPromoted(); err != nil {
		return nil, g.logs(err)
	}
	p, err := g.waitPrimary(old)
	if err != nil {
		return nil, g.logs(err)
	}
	return p, g.follow(old, p)
}

// StallReplica makes the replica stop applying what the primary sends
// (CLIENT PAUSE WRITE on it; it still answers PING and INFO, so the
// Sentinels still take it for a good replica), until a Failover or
// KillPrimary promotes it: then the writes it had not applied are lost,
// as in a failover while replication lags. It returns the replica.
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
	if err := inSync(r, p); err != nil {
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

// follow makes s a replica of primary at once and waits until it is in
// sync. A Sentinel would do it too, but only some 10 to 20 s after a
// failover, when it next reads s's INFO (every 10 s) and s has kept
// saying it is a primary for 8 s.
func (g *SentinelGroup) follow(s, primary *Server) error {
	if _, err := s.Do("REPLICAOF", "127.0.0.1", strconv.Itoa(primary.port)); err != nil {
		return err
	}
	return waitFor(failoverWait, s.Addr()+" in sync with "+primary.Addr(), func() error { return inSync(s, primary) })
}

// KillPrimary kills the primary (SIGKILL, a crash) and waits until the
// Sentinels have agreed it is down, elected one of them and promoted the
// replica, which it returns, together with the killed server. The killed
// server stays down until Rejoin.
func (g *SentinelGroup) KillPrimary() (promoted, killed *Server, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, err := g.Primary()
	if err != nil {
		return nil, nil, err
	}
	if err := old.Kill(); err != nil {
		return nil, nil, err
	}
	if err := g.unstallWhenPromoted(); err != nil {
		return nil, old, g.logs(err)
	}
	promoted, err = g.waitPrimary(old)
	if err != nil {
		return nil, old, g.logs(err)
	}
	return promoted, old, nil
}

// Rejoin restarts s, a data server that KillPrimary killed, as a replica
// of the current primary, and waits until the group could fail over again.
// (Restarted alone, s would come back a primary, its data lost unless
// Persistent, until a Sentinel turns it into a replica some 10 to 20 s
// later.)
func (g *SentinelGroup) Rejoin(s *Server) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, err := g.Primary()
	if err != nil {
		return err
	}
	if p == s {
		return fmt.Errorf("redistest: %s is the primary", s.Addr())
	}
	if err := s.Restart(); err != nil {
		return err
	}
	if err := g.follow(s, p); err != nil {
		return g.logs(err)
	}
	if err := waitFor(failoverWait, "group "+g.Name+" ready to fail over", g.ready); err != nil {
		return g.logs(err)
	}
	return nil
}

// WaitReady waits until the group could fail over again at once: the
// replica in sync with the primary, and every Sentinel knowing it.
func (g *SentinelGroup) WaitReady() error {
	return waitFor(failoverWait, "group "+g.Name+" ready to fail over", g.ready)
}

// logs returns err followed by the last lines of every process's log.
func (g *SentinelGroup) logs(err error) error {
	var b strings.Builder
	b.WriteString(err.Error())
	for _, s := range append(g.Servers, g.Sentinels...) {
		fmt.Fprintf(&b, "\n--- %s:\n%s", s.Addr(), s.logTail(filepath.Join(s.dir, logName), 0))
	}
	return errors.New(b.String())
}

// waitPrimary waits until every Sentinel names a primary other than old,
// the same one, and that server says it is a primary.
func (g *SentinelGroup) waitPrimary(old *Server) (*Server, error) {
	var now *Server
	err := waitFor(failoverWait, "a new primary in place of "+old.Addr(), func() error {
		now = nil
		for _, s := range g.Sentinels {
			out, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.Name)
			if err != nil {
				return err
			}
			p, err := g.server(out)
			if err != nil {
				return err
			}
			if p == old {
				return fmt.Errorf("sentinel %s still names %s", s.Addr(), old.Addr())
			}
			if now != nil && p != now {
				return fmt.Errorf("sentinels disagree: %s and %s", now.Addr(), p.Addr())
			}
			now = p
		}
		role, err := infoField(now, "replication", "role")
		if err != nil {
			return err
		}
		if role != "master" {
			return fmt.Errorf("%s is %s", now.Addr(), role)
		}
		return nil
	})
	return now, err
}

// inSync reports why replica is not a replica of primary with its link up
// and its offset caught up, or nil.
func inSync(replica, primary *Server) error {
	info, err := replica.Do("INFO", "replication")
	if err != nil {
		return err
	}
	f := infoFields(info)
	if f["role"] != "slave" || f["master_port"] != strconv.Itoa(primary.port) || f["master_link_status"] != "up" {
		return fmt.Errorf("%s: role %s of port %s, link %s; want a replica of %s, link up", replica.Addr(), f["role"], f["master_port"], f["master_link_status"], primary.Addr())
	}
	// The primary's view too: after a full sync it streams to the
	// replica, and counts it in WAIT, only once the replica has
	// acknowledged (state=online), up to a second later.
	info, err = primary.Do("INFO", "replication")
	if err != nil {
		return err
	}
	p := infoFields(info)
	online := false
	for k, v := range p {
		if strings.HasPrefix(k, "slave") && strings.Contains(v, "port="+strconv.Itoa(replica.port)+",state=online,") {
			online = true
		}
	}
	if !online {
		return fmt.Errorf("primary %s does not count %s as an online replica", primary.Addr(), replica.Addr())
	}
	if f["slave_repl_offset"] != p["master_repl_offset"] {
		return fmt.Errorf("%s at offset %s; primary at %s", replica.Addr(), f["slave_repl_offset"], p["master_repl_offset"])
	}
	// After a full sync without a disk, the primary holds the stream back
	// until the replica's first acknowledgement, up to a second later,
	// while saying state=online: WAIT counts nothing meanwhile. Only a
	// write that reached the replica shows the stream flows. A PUBLISH is
	// one, that touches no key (not on a Cluster, where it goes over the
	// cluster bus: there the nodes have talked for seconds already).
	if p["master_repl_offset"] == "0" && p["cluster_enabled"] == "" && !isCluster(primary) {
		if _, err := primary.Do("PUBLISH", "redistest:sync", "1"); err != nil {
			return err
		}
		return fmt.Errorf("primary %s has sent %s nothing yet", primary.Addr(), replica.Addr())
	}
	return nil
}

// isCluster reports whether s runs with cluster mode on.
func isCluster(s *Server) bool {
	for i := 0; i+1 < len(s.extra); i++ {
		if s.extra[i] == "--cluster-enabled" {
			return s.extra[i+1] == "yes"
		}
	}
	return false
}

// InSync reports why replica is not in sync with primary, or nil: it is a
// replica of primary, its link is up, the primary counts it as online
// (and so in WAIT), and it has applied everything the primary has sent.
func InSync(replica, primary *Server) error { return inSync(replica, primary) }

// infoField returns one field of an INFO section of s.
func infoField(s *Server, section, field string) (string, error) {
	out, err := s.Do("INFO", section)
	if err != nil {
		return "", err
	}
	return infoFields(out)[field], nil
}

// infoFields parses an INFO reply into its fields.
func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// records parses a Sentinel reply listing instances (SENTINEL REPLICAS,
// SENTINEL SENTINELS), which Do renders as their fields' names and values
// one a line, into one map per instance: each starts with "name".
func records(out string) []map[string]string {
	var recs []map[string]string
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		if lines[i] == "name" {
			recs = append(recs, make(map[string]string))
		}
		if len(recs) > 0 {
			recs[len(recs)-1][lines[i]] = lines[i+1]
		}
	}
	return recs
}

// waitFor polls cond until it returns nil, or fails after timeout with
// cond's last error.
func waitFor(timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: no %s after %v: %w", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
