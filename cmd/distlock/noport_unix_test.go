//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// reservePort returns 127.0.0.1:P for a port P bound, and never listened
// on, until the process exits: a connection there is refused at once, and
// no other socket can bind P meanwhile. A port found free and released
// again could be taken by a master another test starts (TestUnreachable
// then reached it: a clean-clone CI run, 2026-12-06).
func reservePort() string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		panic(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		panic(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
