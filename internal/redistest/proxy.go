package redistest

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxyDialTimeout bounds how long a Proxy waits to connect to its target
// for one accepted connection.
const proxyDialTimeout = 2 * time.Second

// A Proxy is a TCP proxy on 127.0.0.1 in front of one address, for fault
// injection: a client configured with the proxy's address instead of the
// server's can have its connections cut (Cut) and restored (Restore) while
// the server itself keeps running and other clients still reach it
// directly. That is a network partition between one client and one master,
// which neither Kill nor Pause can produce.
//
// It can also make the server slow without pausing it (SetLatency): the
// server runs each command when it arrives, and its answer reaches the
// client late.
//
// Each accepted connection is forwarded to the target over a connection of
// its own, bytes copied both ways until either side closes. Its methods are
// safe for concurrent use.
type Proxy struct {
	target  string
	latency atomic.Int64 // ns by which answers are held back
	ln      net.Listener
	ctx     context.Context // cancelled by Close: ends dials in progress
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the accept loop and every connection's goroutines

	mu     sync.Mutex            // guards conns, cut and closed
	conns  map[net.Conn]struct{} // open connections, both client and target sides
	cut    bool                  // between Cut and Restore: connections are refused
	closed bool                  // Close has run: no new goroutines start
}

// NewProxy starts a proxy listening on a free port of 127.0.0.1 that
// forwards each connection to target ("host:port"). The target need not be
// up yet: it is dialled for each accepted connection. Call Close to stop it.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{target: target, ln: ln, ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's address, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns the proxy's address as a redis:// URL selecting database 0.
func (p *Proxy) URL() string { return "redis://" + p.Addr() + "/0" }

// Cut closes every connection through the proxy, and closes each new one
// as soon as it is accepted, until Restore: to the client the server is
// unreachable (its dials connect, then read EOF at once).
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.closeConnsLocked()
}

// Restore forwards new connections again after Cut. Connections that Cut
// closed stay closed: clients must reconnect.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// SetLatency holds back every byte from the server by d from the moment
// the proxy reads it, on open connections and new ones, until set to 0.
// Order is kept: a client sees the server's answers d late.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Close stops listening, closes every connection and waits for all the
// proxy's goroutines to end. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	p.cancel()
	p.closeConnsLocked()
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// closeConnsLocked closes and forgets every connection. p.mu must be held.
func (p *Proxy) closeConnsLocked() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// track records c as open, or closes it and returns false when the proxy
// is cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// untrack closes c and forgets it.
func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// accept runs until the listener is closed.
func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure (e.g. too many open files): back off a
			// little rather than spin.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		// Add under mu, and only while not closed, so that Close's Wait
		// never races with an Add.
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c)
	}
}

// serve forwards one client connection to the target until either side
// closes, Cut or Close.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	d := net.Dialer{Timeout: proxyDialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return // cut or closed while dialling
	}
	defer p.untrack(server)
	// Closing both connections when either copy ends makes the other end
	// too: a half-closed connection is of no use to a Redis client.
	done := make(chan struct{}, 2)
	copyThenClose := func(dst, src net.Conn) {
		if dst == client {
			p.copyLate(dst, src)
		} else {
			io.Copy(dst, src)
		}
		client.Close()
		server.Close()
		done <- struct{}{}
	}
	// serve's own count keeps wg above zero, so this Add cannot race
	// with Close's Wait.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		copyThenClose(server, client)
	}()
	copyThenClose(client, server)
	<-done
	<-done
}

// copyLate copies src to dst until either fails, each chunk written once
// the latency (SetLatency) has passed since it was read.
func (p *Proxy) copyLate(dst, src net.Conn) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	chunks := make(chan chunk, 1024)
	written := make(chan struct{})
	go func() {
		defer close(written)
		for c := range chunks {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				src.Close() // ends the reader below
				for range chunks {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunks <- chunk{time.Now().Add(time.Duration(p.latency.Load())), append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			break
		}
	}
	close(chunks)
	<-written
}

// ProxyN starts a Proxy in front of each server, in order, and registers a
// cleanup that closes them. Register it after StartN so that the proxies
// close before the servers stop.
func ProxyN(tb TB, servers []*Server) []*Proxy {
	tb.Helper()
	proxies := make([]*Proxy, 0, len(servers))
	tb.Cleanup(func() {
		for _, p := range proxies {
			p.Close()
		}
	})
	for _, s := range servers {
		p, err := NewProxy(s.Addr())
		if err != nil {
			tb.Fatalf("proxy for %s: %v", s.Addr(), err)
		}
		proxies = append(proxies, p)
	}
	return proxies
}
