//go:build !unix

package main

import "net"

// reservePort returns 127.0.0.1:P for a port P that was free just now.
// Unlike the unix version it does not keep P: a master another test starts
// may get it.
func reservePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
