package redistest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Changing a Sentinel group's primary: a failover on request, a crash of
// the primary, and bringing the crashed server back as a replica.

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
