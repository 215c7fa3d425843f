package distlock_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// A *QuorumError names every master it did not hear from: Errs is "nil
// where it answered", so a Release or Extend whose ctx ends while two of
// three masters are paused has errors at 1 and 2 (they were nil, and the
// message named no master). Found by a newcomer's use test.
func TestQuorumErrorNamesSilentMasters(t *testing.T) {
	for _, op := range []string{"release", "extend"} {
		t.Run(op, func(t *testing.T) {
			servers := masters(t, 3)
			c := newClient(t, servers, distlock.Config{TTL: 20 * time.Second})
			l, err := c.Acquire(t.Context(), "silent")
			if err != nil {
				t.Fatal(err)
			}
			redistest.PauseUntilEnd(t, servers[1:]...)
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			if op == "release" {
				err = l.Release(ctx)
			} else {
				err = l.Extend(ctx, 20*time.Second)
			}
			var q *distlock.QuorumError
			if !errors.As(err, &q) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s with 2 of 3 masters paused: %v; want a *QuorumError and the deadline", op, err)
			}
			if q.Errs[0] != nil {
				t.Errorf("Errs[0] = %v; want nil: master 0 answered", q.Errs[0])
			}
			for i := 1; i < 3; i++ {
				var ne *distlock.NodeError
				if !errors.As(q.Errs[i], &ne) || ne.Addr != servers[i].Addr() && ne.Addr != servers[i].URL() {
					t.Errorf("Errs[%d] = %v; want a *NodeError for %s, paused", i, q.Errs[i], servers[i].Addr())
				}
			}
		})
	}
}

// Close's error counts the masters that confirmed the deletes: with 2 of
// 3 masters paused, Granted is 1 (it said 0, though master 0 had deleted
// every key).
func TestCloseErrorCountsAnsweringMasters(t *testing.T) {
	servers := masters(t, 3)
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers), TTL: 20 * time.Second, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"close1", "close2"} {
		if _, err := c.Acquire(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	redistest.PauseUntilEnd(t, servers[1:]...)
	err = c.Close()
	var q *distlock.QuorumError
	if !errors.As(err, &q) {
		t.Fatalf("Close with 2 of 3 masters paused: %v; want a *QuorumError", err)
	}
	if q.Granted != 1 || q.Needed != 2 {
		t.Errorf("Close: Granted %d, Needed %d; want 1 of 2 (master 0 deleted the keys): %v", q.Granted, q.Needed, err)
	}
	// The leases by name (a use test found "(3 of 3 leases)" where
	// QuorumError.Name promises a lock's name).
	if q.Name != "close1" && q.Name != "close2" {
		t.Errorf("Close: QuorumError.Name %q; want one of the leases' names", q.Name)
	}
	if msg := err.Error(); !strings.Contains(msg, `2 of 2 leases`) || !strings.Contains(msg, `"close1"`) || !strings.Contains(msg, `"close2"`) {
		t.Errorf("Close: %v; want both leases named, 2 of 2", err)
	}
	if keys := lockKeys(t, servers[0]); len(keys) != 0 {
		t.Errorf("master 0 still holds %v", keys)
	}
}

// What a *QuorumError says: how many masters granted and how many were
// needed, without "1 of 2 needed masters" (read as 1 answered of 2) or
// "on 1 masters".
func TestQuorumErrorText(t *testing.T) {
	for _, tc := range []struct {
		e    distlock.QuorumError
		want string
	}{
		{distlock.QuorumError{Op: "release", Name: "x", Granted: 1, Needed: 2, Errs: make([]error, 3)},
			`distlock: release "x": no quorum: granted by 1 master; 2 needed`},
		{distlock.QuorumError{Op: "acquire", Name: "x", Granted: 1, Held: 1, Needed: 2, Errs: make([]error, 3)},
			`distlock: acquire "x": locked by another holder on 1 master (granted by 1; 2 needed)`},
		{distlock.QuorumError{Op: "fence", Name: "x", Granted: 2, Needed: 2, Expired: true, Errs: make([]error, 3)},
			`distlock: fence "x": granted by 2 masters (2 needed), but validity ran out before the answers came`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q; want %q", got, tc.want)
		}
	}
}
