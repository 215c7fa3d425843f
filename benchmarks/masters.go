package benchmarks

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// A Masters is the run's set of redis-server masters; a peer on n masters
// uses the first n.
type Masters struct {
	Addrs []string
	admin []rueidis.Client // one per master, for key checks and PTTL samples
	pids  []int            // redis-server process ids, for their CPU time
}

// cpu returns the CPU time (user+system) all masters have used, read from
// /proc; zero where /proc is not there.
func (m *Masters) cpu() time.Duration { return procCPU(m.pids) }

// procCPU returns the CPU time (user+system) the processes pids have used,
// read from /proc; zero where /proc is not there or one has exited.
func procCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0
		}
		// Fields after the ")" that ends the command name: utime and
		// stime are the 12th and 13th, in clock ticks (100 per second on
		// Linux).
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+st) * 10 * time.Millisecond
	}
	return total
}

// open makes one instance of p on its masters.
func (m *Masters) open(p Peer, ttl, renew time.Duration) (Locker, error) {
	if p.Masters > len(m.Addrs) {
		return nil, fmt.Errorf("benchmarks: %s needs %d masters, the run has %d", p.ID, p.Masters, len(m.Addrs))
	}
	return p.Open(m.Addrs[:p.Masters], ttl, renew)
}
