package redistest

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"
)

// A LateDialer makes connections whose bytes can be delivered late: the
// fault that a TCP connection's send queue makes when a client gives up on
// a connection during a partition (a write timeout, a PING unanswered) and
// dials a new one. The client has closed the old socket, but the kernel
// still holds what was written to it, and delivers it when the partition
// heals: commands sent on the old connection then reach the server after
// commands sent on the new one. A proxy that drops bytes, or closes both
// sides, cannot produce that.
//
// Use Dial as a rueidis.ClientOption's DialCtxFn. Between Partition and
// Break, what the client writes is held, and nothing comes back. Break ends
// the partition for new connections, and makes the client see the old
// ones fail (a read error), as a reset would; their held bytes stay held,
// as in a send queue, even after the client closes them. DeliverHeld then
// writes them to the server, in order, and closes those connections. Its
// methods are safe for concurrent use.
type LateDialer struct {
	mu        sync.Mutex
	partition bool
	trigger   []byte // PartitionOn's pattern, until a write matches it
	conns     map[*lateConn]struct{}
}

// NewLateDialer returns a LateDialer with no partition.
func NewLateDialer() *LateDialer {
	return &LateDialer{conns: make(map[*lateConn]struct{})}
}

// Dial connects to dst, for rueidis.ClientOption.DialCtxFn.
func (d *LateDialer) Dial(ctx context.Context, dst string, dialer *net.Dialer, cfg *tls.Config) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, "tcp", dst)
	if err != nil {
		return nil, err
	}
	lc := &lateConn{Conn: c, d: d, broken: make(chan struct{})}
	d.mu.Lock()
	lc.held = d.partition
	d.conns[lc] = struct{}{}
	d.mu.Unlock()
	return lc, nil
}

// Mute holds, from now on, what the servers send back on the connections
// open now: what the client writes still goes out and runs, but its
// answers come only after Unmute, as over a link slow in one direction.
func (d *LateDialer) Mute() { d.setMuted(true) }

// Unmute lets the connections read what the servers sent meanwhile.
func (d *LateDialer) Unmute() { d.setMuted(false) }

func (d *LateDialer) setMuted(m bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		c.mu.Lock()
		c.muted = m
		c.mu.Unlock()
	}
}

// Partition holds, from now on, every byte written on the connections open
// now, and answers nothing on them.
func (d *LateDialer) Partition() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.partition = true
	for c := range d.conns {
		c.mu.Lock()
		c.held = true
		c.mu.Unlock()
	}
}

// PartitionOn holds, from the first write that contains pattern, that
// write and every later one on the connection that made it, and answers
// nothing more on it, as Partition does for that connection alone: the
// partition starts between two commands of one client on one master. The
// other connections are not held. It fires once.
func (d *LateDialer) PartitionOn(pattern []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trigger = append([]byte(nil), pattern...)
}

// matched reports whether b fires PartitionOn's pattern, and disarms it.
func (d *LateDialer) matched(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trigger == nil || !bytes.Contains(b, d.trigger) {
		return false
	}
	d.trigger = nil
	return true
}

// Resume ends the partition without breaking anything: the bytes held on
// each connection go to the server, in order, and the connections carry
// on, as after a stall that no timeout noticed. Connections dialled from
// now on are not held.
func (d *LateDialer) Resume() {
	d.endPartition(func(c *lateConn) {
		if len(c.buf) > 0 {
			c.Conn.Write(c.buf)
		}
		c.buf, c.held = nil, false
	})
}

// endPartition ends the partition for connections dialled from now on, and
// runs f, under the connection's lock, on each connection that is held and
// not broken.
func (d *LateDialer) endPartition(f func(c *lateConn)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.partition = false
	for c := range d.conns {
		c.mu.Lock()
		if c.held && !c.isBroken {
			f(c)
		}
		c.mu.Unlock()
	}
}

// Break ends the partition for connections dialled from now on, and makes
// the held connections fail on the client's side: their next Read returns
// an error. Their bytes stay held until DeliverHeld.
func (d *LateDialer) Break() {
	d.endPartition(func(c *lateConn) {
		c.isBroken = true
		close(c.broken)
		// A Read begun before the partition is blocked in the socket,
		// where nothing more comes: end it.
		c.Conn.SetReadDeadline(time.Now())
	})
}

// DeliverHeld writes the bytes held on broken connections to the server,
// each connection's in the order they were written, waits briefly for the
// server to run them, and closes those connections. It returns how many
// bytes it delivered.
func (d *LateDialer) DeliverHeld() int {
	d.mu.Lock()
	var late []*lateConn
	for c := range d.conns {
		if c.isBrokenNow() {
			late = append(late, c)
			delete(d.conns, c)
		}
	}
	d.mu.Unlock()
	n := 0
	for _, c := range late {
		c.mu.Lock()
		b := c.buf
		c.buf = nil
		c.mu.Unlock()
		if len(b) > 0 {
			c.Conn.Write(b)
			n += len(b)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the server run them
	for _, c := range late {
		c.Conn.Close()
	}
	return n
}

// Close closes every connection still open.
func (d *LateDialer) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		c.Conn.Close()
		delete(d.conns, c)
	}
}

type lateConn struct {
	net.Conn
	d      *LateDialer
	broken chan struct{} // closed by Break

	mu       sync.Mutex // guards the fields below
	held     bool       // writes are held, not sent
	muted    bool       // replies are held in the socket, not read (Mute)
	isBroken bool
	closed   bool // the client closed it
	buf      []byte
}

func (c *lateConn) mutedNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.muted && !c.closed
}

func (c *lateConn) isBrokenNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isBroken
}

func (c *lateConn) Write(b []byte) (int, error) {
	fire := c.d.matched(b) // before c.mu: the dialer's lock comes first
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if fire {
		c.held = true
	}
	if c.held {
		c.buf = append(c.buf, b...)
		c.mu.Unlock()
		return len(b), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// Read returns what the server sends, except that a held connection
// answers nothing, and a broken one fails.
func (c *lateConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		held, closed := c.held || c.muted, c.closed
		c.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		if !held {
			n, err := c.Conn.Read(b)
			if err != nil && c.isBrokenNow() {
				err = io.ErrUnexpectedEOF
			}
			// A Read begun before Mute returns what came after it only
			// once unmuted.
			for n > 0 && c.mutedNow() {
				time.Sleep(10 * time.Millisecond)
			}
			return n, err
		}
		select {
		case <-c.broken:
			return 0, io.ErrUnexpectedEOF
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close closes the client's side. A held connection's socket stays open,
// with what it holds, until DeliverHeld or LateDialer.Close.
func (c *lateConn) Close() error {
	c.mu.Lock()
	c.closed = true
	held := c.held
	c.mu.Unlock()
	if held {
		return nil
	}
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}
