// Package server names a Redis server by its address, whatever the
// spelling, so that two masters on one server can be told apart from two
// independent ones.
package server

import (
	"net"
	"strconv"
	"strings"
)

// Key returns host:port of addr (a host:port, or a bare host for port
// 6379) with the host and port in one spelling: every loopback address
// (127.0.0.0/8, ::1), the unspecified ones (0.0.0.0, ::, which reach the
// local host) and "localhost" as "loopback", so that two loopback
// addresses on one port count as one server, as they are when it listens
// on all of them; other IP addresses in canonical form; names in lower
// case without a final dot; the port without leading zeros.
func Key(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), "6379"
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	} else if port == "" {
		port = "6379"
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
		if ip.IsLoopback() || ip.IsUnspecified() {
			host = "loopback"
		}
	} else if host == "localhost" {
		host = "loopback"
	}
	return net.JoinHostPort(host, port)
}

// Same returns the first two masters, j < i, that are one server: each
// master given by its addresses (a Sentinel group or a Cluster has
// several), compared by Key in order. A master with no address is passed
// over.
func Same(masters [][]string) (j, i int, found bool) {
	seen := make(map[string]int, len(masters))
	for i, addrs := range masters {
		if len(addrs) == 0 {
			continue
		}
		keys := make([]string, len(addrs))
		for k, a := range addrs {
			keys[k] = Key(a)
		}
		id := strings.Join(keys, ",")
		if j, dup := seen[id]; dup {
			return j, i, true
		}
		seen[id] = i
	}
	return 0, 0, false
}
