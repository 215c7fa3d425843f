package benchmarks

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// TTL is the lease TTL every peer is given in the latency, throughput,
// handoff and allocation workloads (distlock's default).
const TTL = 10 * time.Second

// PollInterval is the retry delay of the peers that wait by polling
// (redsync, bsm/redislock): fixed, as issue 4 measured bsm/redislock with.
// distlock and rueidislock are woken by notifications instead.
const PollInterval = 10 * time.Millisecond

// A Lock is a held lock of any peer.
type Lock interface {
	Release(ctx context.Context) error
}

// A Locker is one instance of a peer (a Client, a Locker, a pool set),
// safe for concurrent use.
type Locker interface {
	// Acquire waits until name is held or ctx ends. The lock must not
	// depend on ctx staying alive until Release (rueidislock ties its lock
	// to the context it is given, so callers cancel ctx only after
	// Release).
	Acquire(ctx context.Context, name string) (Lock, error)
	Close()
}

// A Peer is one lock implementation, set up on the first Masters of the
// run's redis-server masters.
type Peer struct {
	ID      string // short name: "distlock-3"
	Label   string // row label in the table
	Masters int
	// Open makes one instance on addrs (host:port, len(addrs) == Masters).
	// ttl is the lease TTL; renew, when positive, the renewal interval for
	// the peers that renew by themselves.
	Open func(addrs []string, ttl, renew time.Duration) (Locker, error)
	// KeyPrefix starts every key this peer's locks put on a master; once a
	// workload is over no such key may remain (distlock's permanent fence
	// counters, under "distlock:fence:", excepted).
	KeyPrefix string
}

// Peers returns every peer. distlock and the floor come for 3 and 5
// masters, redsync for 3 and 5, the single-node peers for one.
func Peers() []Peer {
	return []Peer{
		{ID: "floor-3", Label: "floor: raw rueidis, 3 masters", Masters: 3, Open: openFloor, KeyPrefix: "floor:"},
		{ID: "distlock-3", Label: "distlock, 3 masters", Masters: 3, Open: openDistlock, KeyPrefix: "distlock:"},
		{ID: "distlock-3-noevents", Label: "distlock, 3 masters, DisableLossEvents", Masters: 3, Open: openDistlockNoEvents, KeyPrefix: "distlock:"},
		{ID: "redsync-3", Label: "redsync v4 + go-redis v9, 3 masters", Masters: 3, Open: openRedsync, KeyPrefix: "redsync:"},
		{ID: "redislock-1", Label: "bsm/redislock, 1 node", Masters: 1, Open: openRedislock, KeyPrefix: "redislock:"},
		{ID: "rueidislock-1", Label: "rueidislock, 1 node", Masters: 1, Open: openRueidislock, KeyPrefix: "rueidislock:"},
		{ID: "rueidislock-1-noloop", Label: "rueidislock, 1 node, NoLoopTracking", Masters: 1, Open: openRueidislockNoLoop, KeyPrefix: "rueidislock:"},
		{ID: "floor-5", Label: "floor: raw rueidis, 5 masters", Masters: 5, Open: openFloor, KeyPrefix: "floor:"},
		{ID: "distlock-5", Label: "distlock, 5 masters", Masters: 5, Open: openDistlock, KeyPrefix: "distlock:"},
		{ID: "redsync-5", Label: "redsync v4 + go-redis v9, 5 masters", Masters: 5, Open: openRedsync, KeyPrefix: "redsync:"},
		{ID: "floor-majority-3", Label: "floor, release at a majority, 3 masters", Masters: 3, Open: openFloorMajority, KeyPrefix: "floor:"},
		{ID: "floor-majority-5", Label: "floor, release at a majority, 5 masters", Masters: 5, Open: openFloorMajority, KeyPrefix: "floor:"},
	}
}

// Ceiling is the handoff workload's upper bound: see openCeiling. It is not
// among Peers: two instances are two locks.
var Ceiling = Peer{ID: "ceiling-0", Label: "ceiling: a channel in one process, no Redis", Open: openCeiling, KeyPrefix: "ceiling:"}

// PeerByID returns the peer with that ID, or Ceiling.
func PeerByID(id string) (Peer, error) {
	for _, p := range append(Peers(), Ceiling) {
		if p.ID == id {
			return p, nil
		}
	}
	return Peer{}, fmt.Errorf("benchmarks: no peer %q", id)
}

// Family is the peer's ID without its master count: "distlock".
func (p Peer) Family() string {
	f, _, _ := strings.Cut(p.ID, "-")
	return f
}
