// Package server names a Redis server by its address, whatever the
// spelling, so that two masters on one server can be told apart from two
// independent ones.
package server

import (
	"net"
	"strings"
)

// Key returns host:port of addr (a host:port, or a bare host for port
// 6379) with the host in one spelling: loopback names and addresses
// ("localhost", 127.0.0.1, ::1) as "loopback", IP addresses in their
// canonical form, names in lower case.
func Key(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), "6379"
	}
	if port == "" {
		port = "6379"
	}
	host = strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
		if ip.IsLoopback() {
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
