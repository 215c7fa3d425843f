package redistest

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ping sends PING over a new connection to addr, speaking RESP by hand
// (Server.Do dials the server itself, not the proxy), and returns the
// reply line.
func ping(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return pingOn(c)
}

// pingOn sends PING on an open connection and returns the reply line.
func pingOn(c net.Conn) (string, error) {
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// proxyGoroutines returns the stacks of goroutines running Proxy code.
func proxyGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "redistest.(*Proxy)") {
			found = append(found, g)
		}
	}
	return strings.Join(found, "\n\n")
}

// noProxyGoroutines fails the test unless every Proxy goroutine has ended,
// allowing a moment for those that have signalled Close (wg.Done) to return.
func noProxyGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		g := proxyGoroutines()
		if g == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy goroutines left after Close:\n%s", g)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxyForwards(t *testing.T) {
	s := StartN(t, 1, Options{})[0]
	p := ProxyN(t, []*Server{s})[0]

	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || p.Addr() == s.Addr() {
		t.Errorf("Addr() = %q; want 127.0.0.1:PORT, not the server's %s", p.Addr(), s.Addr())
	}
	if want := "redis://" + p.Addr() + "/0"; p.URL() != want {
		t.Errorf("URL() = %q; want %q", p.URL(), want)
	}
	if got, err := ping(p.Addr()); err != nil || got != "+PONG" {
		t.Fatalf("PING through the proxy: got %q, %v; want +PONG", got, err)
	}
	// Several commands on one connection, and several connections at once.
	conns := make([]net.Conn, 3)
	for i := range conns {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		conns[i] = c
	}
	for round := range 2 {
		for i, c := range conns {
			if got, err := pingOn(c); err != nil || got != "+PONG" {
				t.Fatalf("round %d, connection %d: got %q, %v; want +PONG", round, i, got, err)
			}
		}
	}
}

func TestProxyCutRestore(t *testing.T) {
	s := StartN(t, 1, Options{})[0]
	p := ProxyN(t, []*Server{s})[0]

	open, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	open.SetDeadline(time.Now().Add(2 * time.Second))
	if got, err := pingOn(open); err != nil || got != "+PONG" {
		t.Fatalf("PING before Cut: got %q, %v; want +PONG", got, err)
	}

	p.Cut()
	// The open connection is closed by the proxy: reading it ends at once
	// (EOF or reset), well before its deadline.
	start := time.Now()
	if n, err := open.Read(make([]byte, 16)); err == nil {
		t.Errorf("read on a connection open across Cut: got %d bytes; want an error", n)
	} else if isTimeout(err) || time.Since(start) > time.Second {
		t.Errorf("read on a connection open across Cut: got %v after %v; want EOF at once", err, time.Since(start))
	}
	// New connections are refused: closed right after accept.
	for i := range 3 {
		if got, err := ping(p.Addr()); err == nil || isTimeout(err) {
			t.Errorf("PING %d during Cut: got %q, %v; want the connection closed", i, got, err)
		}
	}
	// The server itself is fine: only the path through the proxy is cut.
	if got := mustDo(t, s, "PING"); got != "PONG" {
		t.Errorf("direct PING during Cut: got %q; want PONG", got)
	}

	p.Restore()
	if got, err := ping(p.Addr()); err != nil || got != "+PONG" {
		t.Fatalf("PING after Restore: got %q, %v; want +PONG", got, err)
	}
	// Cut and Restore again: the proxy is reusable.
	p.Cut()
	if _, err := ping(p.Addr()); err == nil {
		t.Error("PING during the second Cut succeeded; want the connection closed")
	}
	p.Restore()
	if got, err := ping(p.Addr()); err != nil || got != "+PONG" {
		t.Fatalf("PING after the second Restore: got %q, %v; want +PONG", got, err)
	}
}

// SetLatency delays the server's answers, on a connection already open,
// and the command itself still runs at once.
func TestProxyLatency(t *testing.T) {
	s := StartN(t, 1, Options{})[0]
	p := ProxyN(t, []*Server{s})[0]
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := pingOn(c); err != nil || got != "+PONG" {
		t.Fatalf("PING: got %q, %v; want +PONG", got, err)
	}

	const latency = 300 * time.Millisecond
	p.SetLatency(latency)
	start := time.Now()
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"); err != nil {
		t.Fatal(err)
	}
	// The SET has run before its answer arrives.
	time.Sleep(latency / 3)
	if got := mustDo(t, s, "GET", "k"); got != "v" {
		t.Errorf("GET before the answer came through: got %q; want v", got)
	}
	line, err := r.ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		t.Fatalf("SET through the slow proxy: got %q, %v; want +OK", line, err)
	}
	if d := time.Since(start); d < latency {
		t.Errorf("answer came after %v; want at least the latency %v", d, latency)
	}

	p.SetLatency(0)
	if got, err := pingOn(c); err != nil || got != "+PONG" {
		t.Fatalf("PING after SetLatency(0): got %q, %v; want +PONG", got, err)
	}
	p.Close()
	noProxyGoroutines(t)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestProxyClose(t *testing.T) {
	s := StartN(t, 1, Options{})[0]
	p, err := NewProxy(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// Open connections, one of them mid-request to a paused server, so that
	// Close has copies blocked in both directions to end.
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if got, err := pingOn(c); err != nil || got != "+PONG" {
			t.Fatalf("PING: got %q, %v; want +PONG", got, err)
		}
		conns = append(conns, c)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	defer s.Resume()
	if _, err := io.WriteString(conns[0], "*1\r\n$4\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Close did not return within 2s; goroutines:\n%s", proxyGoroutines())
	}
	noProxyGoroutines(t)

	for i, c := range conns {
		if n, err := c.Read(make([]byte, 16)); err == nil || isTimeout(err) {
			t.Errorf("read on connection %d after Close: got %d bytes, %v; want EOF", i, n, err)
		}
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("dial after Close succeeded; want the port closed")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: got %v; want nil", err)
	}
}

// TestProxyCloseUnreachable closes a proxy whose target refuses
// connections and one whose target is never dialled.
func TestProxyCloseUnreachable(t *testing.T) {
	// A port nobody listens on: take a free one and release it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	p, err := NewProxy(dead)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ping(p.Addr()); err == nil {
		t.Errorf("PING through a proxy to a dead target: got %q; want the connection closed", got)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	noProxyGoroutines(t)

	idle, err := NewProxy(dead)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Errorf("Close of an idle proxy: %v", err)
	}
	noProxyGoroutines(t)
}
