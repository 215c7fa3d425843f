package redistest

import (
	"fmt"
	"strconv"
	"strings"
)

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
