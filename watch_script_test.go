package distlock_test

import (
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// The scripts publish with pcall: a user that may not publish (ACL
// without channel rights, the default for new users since Redis 7) still
// takes, extends and releases locks.
func TestLockWithoutChannelRights(t *testing.T) {
	servers := masters(t, 3)
	nodes := make([]string, len(servers))
	for i, s := range servers {
		if _, err := s.Do("ACL", "SETUSER", "nochannels", "on", ">secret", "~*", "resetchannels", "+@all"); err != nil {
			t.Fatal(err)
		}
		nodes[i] = "redis://nochannels:secret@" + s.Addr() + "/0"
	}
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := c.TryAcquire(t.Context(), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(t.Context(), 5*time.Second); err != nil {
		t.Errorf("Extend: %v", err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Errorf("Release: %v", err)
	}
	noLockKeys(t, servers)
}
