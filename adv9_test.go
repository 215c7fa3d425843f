package distlock_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Ninth adversarial review: the message counts that decide where a new
// lease's key is read before it is tracked (f39e604: keyEvents.expect,
// readNew). The counting assumes one message per write; BCAST tracking
// names a key once per event-loop turn, however many wrote it.

// adv9Conn opens a plain connection to s, answered once (PING) so that
// the server has accepted it before it is paused.
func adv9Conn(t *testing.T, s *redistest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	r := bufio.NewReader(conn)
	_, err = conn.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)
	return conn, r
}

// TestAdv9LossMergedWithOwnWrite: another program deletes the key right
// after the acquire set it, in the same turn of each master's event loop
// (here: the masters paused while both commands queue up, as on a busy
// server). Each master sends one message naming the key, which readNew
// takes for the acquire's own write (keyEvents.expect): no read, and the
// loss is found by the renewal, a third of the TTL later, not at once.
// This is the known gap docs/design.md ("Loss events") states; reading
// every new lease's key on every master would close it at a GET per
// master per acquire (a quarter of the throughput at 64 goroutines:
// f39e604). The test holds the fallback to account: the renewal ends
// such a lease.
func TestAdv9LossMergedWithOwnWrite(t *testing.T) {
	servers := masters(t, 3)
	const ttl = 3 * time.Second
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(servers), TTL: ttl, NodeTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx := ctxTimeout(t, 30*time.Second)
	// Connections up (tracking on) before the masters freeze.
	warm, err := c.TryAcquire(ctx, "adv9-warm")
	require.NoError(t, err)
	require.NoError(t, warm.Release(ctx))
	conns := make([]net.Conn, len(servers))
	readers := make([]*bufio.Reader, len(servers))
	for i, s := range servers {
		conns[i], readers[i] = adv9Conn(t, s)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Resume()
		}
	})
	// The masters run the queued commands in the order their sockets
	// became readable, which the kernel does not promise: a round where a
	// DEL ran first (the lease rightly holds there) is tried again.
	// A lease is tracked before its master's message is counted now and
	// then (the reply comes first): then the message finds it in byKey and
	// the loss is seen. Three rounds with every DEL after the acquire.
	merged := 0
	for round := range 12 {
		name := fmt.Sprintf("adv9-merged-%d", round)
		key := "distlock:" + name
		for _, s := range servers {
			require.NoError(t, s.Pause())
		}
		type res struct {
			l   *distlock.Lease
			err error
		}
		got := make(chan res, 1)
		go func() {
			l, err := c.TryAcquire(ctx, name)
			got <- res{l, err}
		}()
		time.Sleep(200 * time.Millisecond) // the acquires wait in the masters' sockets
		del := fmt.Sprintf("*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n", len(key), key)
		for _, conn := range conns {
			_, err := conn.Write([]byte(del))
			require.NoError(t, err)
		}
		time.Sleep(50 * time.Millisecond)
		for _, s := range servers {
			require.NoError(t, s.Resume())
		}
		r := <-got
		require.NoError(t, r.err)
		after := 0
		for _, rd := range readers {
			line, err := rd.ReadString('\n')
			require.NoError(t, err)
			if line == ":1\r\n" { // the DEL ran after the acquire, and took its key
				after++
			}
		}
		if after < len(servers) {
			t.Logf("round %d: the DEL ran first on %d masters; again", round, len(servers)-after)
			r.l.Release(ctx) // lost already, when 2 of 3 DELs came after
			continue
		}
		select {
		case <-r.l.Done():
			require.ErrorIs(t, r.l.Err(), distlock.ErrLeaseLost)
		case <-time.After(ttl * 2 / 3):
			t.Fatalf("key deleted on every master in the acquire's own event-loop turn: Done still open 2/3 of a TTL later (Err %v); want the loss by the renewal at TTL/3 at the latest", r.l.Err())
		}
		if merged++; merged == 2 {
			return
		}
	}
	if merged == 0 {
		t.Skip("the DELs never all ran after the acquire")
	}
}
