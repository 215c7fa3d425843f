package distlock

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock/internal/watch"
)

// nameWatch is the shared state of one watched name.
type nameWatch struct {
	req      *request
	refs     int
	watchers map[*watcher]struct{}
	wakers   map[*waker]struct{}
	per      []masterState
	seq      []uint64     // per master: messages that set the state or asked for a read
	state    *watch.State // the holds the masters reported, merged (internal/watch)
	head     string       // the waiter master 0 last announced first in line
	marks    uint64       // setBehind calls: a read of master 0's line sent before one clears no mark (lineEmpty)
	// linger, while no one watches or waits, unsubscribes when it fires
	// (watchLinger); nil while someone does. lingers changes whenever a
	// linger starts or ends otherwise, so that a timer that fired late
	// ends nothing.
	linger  *time.Timer
	lingers uint64
}

// watchLinger is how long a Client stays subscribed to a name after its last
// watcher or waiter has gone, in ns (tests change it). A process that takes
// a contended lock again and again would otherwise subscribe, read the key
// and unsubscribe on every master each time it waits: more commands than
// the acquire itself.
var watchLinger atomic.Int64

func init() { watchLinger.Store(int64(time.Second)) }

// watchHub is a Client's watch machinery.
type watchHub struct {
	c *Client

	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu      sync.Mutex // guards names and everything in them
	names   map[string]*nameWatch
	closed  bool // closeAll has run: nothing is added, nothing lingers
	masters []*masterWatch
	once    sync.Once // starts the masters' goroutines on first use
}

func newWatchHub(c *Client) *watchHub {
	h := &watchHub{c: c, names: make(map[string]*nameWatch)}
	for _, n := range c.nodes {
		h.masters = append(h.masters, &masterWatch{
			hub:      h,
			node:     n,
			signal:   make(chan struct{}, 1),
			keyspace: "__keyspace@" + strconv.Itoa(n.opt.SelectDB) + "__:",
			refresh:  make(map[string]bool),
		})
	}
	return h
}

// start runs one goroutine per master; they end when the Client closes.
func (h *watchHub) start() {
	for _, m := range h.masters {
		h.c.spawn(m.run)
	}
}

// A waker is a waiting Acquire's registration: ch gets a token when the
// Acquire should try again. value is the Acquire's; behind is set while
// master 0 says an earlier waiter is first in line: such a waiter is not
// woken when the lock comes free (the first in line is), only when master
// 0 announces it first (leave.lua), so that a release wakes one waiter,
// not all of them; it also retries when master 0 said the first in line's
// place lapses unless renewed (acquire.go). own is set to the value of
// its last attempt when masters failed that attempt and others granted it:
// that attempt's own clean-up then ends what may look like a hold of own,
// or a key gone while no one holds the lock, and its place may be
// announced first in line; none of these wakes it, only another hold's
// end (acquire.go). Guarded by h.mu.
type waker struct {
	ch     chan struct{}
	value  string
	behind bool
	own    string
	// sleeps is set while master 0's last word on the waiter, at an
	// attempt whose verdict it was in time for, is that it is behind:
	// its timer then only renews its place (acquire.go, waiting.delay).
	// An attempt decided before master 0 answered leaves it as it is;
	// an announcement that it is first clears it.
	sleeps bool
}

// add registers a watcher (w) or a waker (wake) for req's name. It
// subscribes on every master, and reads the key there, for the name's first
// user and for every watcher (whose first event is the state read); a
// waiter joining a name already subscribed sends nothing, and is woken at
// once if the lock is known to be free. With a watcher it waits until a
// majority of masters has subscribed and read the key, or ctx ends. Once
// the Client is closing it fails for a watcher with ErrClosed, and gives a
// waiter a name that nothing will wake.
func (h *watchHub) add(ctx context.Context, req *request, w *watcher, wake *waker) (*nameWatch, error) {
	// No watch connections until something watches: a Client that only
	// locks never needs them (nor CONFIG rights).
	h.once.Do(h.start)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		if w != nil {
			return nil, ErrClosed
		}
		// Nothing is heard on it: every master unknown.
		return &nameWatch{req: req, state: watch.NewState(len(h.masters), h.c.quorum)}, nil
	}
	nw := h.names[req.name]
	fresh := nw == nil
	if fresh {
		nw = &nameWatch{
			req: req, watchers: make(map[*watcher]struct{}), wakers: make(map[*waker]struct{}),
			per: make([]masterState, len(h.masters)), seq: make([]uint64, len(h.masters)),
			state: watch.NewState(len(h.masters), h.c.quorum),
		}
		h.names[req.name] = nw
	}
	nw.stopLinger()
	nw.refs++
	if w != nil {
		nw.watchers[w] = struct{}{}
	}
	if wake != nil {
		nw.wakers[wake] = struct{}{}
	}
	if !fresh && w == nil {
		// Subscribed already, or being subscribed, and kept up to date
		// by the messages (and by a read after every resubscription): a
		// waiter needs nothing more. Where the read of a fresh
		// subscription would have woken it, wake it now: the lock may
		// have come free since the attempt that made it wait.
		if nw.state.Started() && nw.state.Free() {
			wake.signal()
		}
		h.mu.Unlock()
		return nw, nil
	}
	h.mu.Unlock()

	acks := make(chan ack, len(h.masters))
	for _, m := range h.masters {
		m.enqueue(op{kind: opSubscribe, name: req.name, ack: acks})
	}
	if w == nil {
		return nw, nil // a waiter does not wait: events only speed it up
	}
	errs := make([]error, len(h.masters))
	ok, answered := 0, 0
	timeout := time.NewTimer(max(h.c.cfg.dialTimeout, time.Second))
	defer timeout.Stop()
	for ok < h.c.quorum && answered < len(h.masters) {
		select {
		case a := <-acks:
			answered++
			if a.err == nil {
				ok++
			} else {
				errs[a.node] = a.err
			}
		case <-ctx.Done():
			h.remove(nw, w, nil)
			return nil, fmt.Errorf("distlock: watch %q: subscribed on %d of %d needed masters: %w", req.name, ok, h.c.quorum, ctx.Err())
		case <-h.c.stop:
			return nil, ErrClosed
		case <-timeout.C:
			answered = len(h.masters)
		}
	}
	if ok < h.c.quorum {
		h.remove(nw, w, nil)
		return nil, &QuorumError{Op: "watch", Name: req.name, Granted: ok, Needed: h.c.quorum, Errs: errs}
	}
	// Deliver the state found, if held (unless set already did).
	h.mu.Lock()
	if value, n := nw.state.Holder(); nw.state.Started() && !nw.state.Free() && !w.initialized {
		w.send(holdEvent(req.name, EventAcquired, time.Now(), n, value, true))
	}
	h.mu.Unlock()
	return nw, nil
}

// remove unregisters a watcher or a waker; when it was the last, the name
// lingers subscribed for watchLinger (drop).
func (h *watchHub) remove(nw *nameWatch, w *watcher, wake *waker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return // closeAll closed the watchers; the connections are going
	}
	if w != nil {
		if _, ok := nw.watchers[w]; !ok {
			return
		}
		delete(nw.watchers, w)
		w.closed = true
		// Events still buffered are dropped: after ctx ends the receiver
		// sees the channel closed, not stale events.
		for len(w.ch) > 0 {
			<-w.ch
		}
		close(w.ch)
	}
	if wake != nil {
		if _, ok := nw.wakers[wake]; !ok {
			return
		}
		delete(nw.wakers, wake)
	}
	if nw.refs--; nw.refs > 0 {
		return
	}
	nw.lingers++
	n := nw.lingers
	nw.linger = time.AfterFunc(time.Duration(watchLinger.Load()), func() { h.drop(nw, n) })
}

// unseen marks the next event of each of nw's watchers Unseen: a master's
// watch connection was lost or made again. h.mu is held.
func (nw *nameWatch) unseen() {
	for w := range nw.watchers {
		w.unseen = true
	}
}

// stopLinger ends nw's linger, if any: a linger timer that fired meanwhile
// ends nothing. h.mu is held.
func (nw *nameWatch) stopLinger() {
	if nw.linger != nil {
		nw.linger.Stop()
		nw.linger = nil
	}
	nw.lingers++
}

// drop unsubscribes from nw's name once it has lingered with no watcher
// or waiter (see watchLinger); n is the linger that ends.
func (h *watchHub) drop(nw *nameWatch, n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if nw.lingers != n {
		return // watched or waited for again meanwhile, or closed
	}
	nw.linger = nil
	delete(h.names, nw.req.name)
	for i := range nw.per {
		if t := nw.per[i].timer; t != nil {
			t.Stop()
		}
	}
	for _, m := range h.masters {
		m.enqueue(op{kind: opUnsubscribe, name: nw.req.name, channelKey: nw.req.key})
	}
}

// closeAll closes every watcher's channel; the Client is closing.
func (h *watchHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, nw := range h.names {
		for w := range nw.watchers {
			w.closed = true
			close(w.ch)
		}
		nw.watchers = nil
		for i := range nw.per {
			if t := nw.per[i].timer; t != nil {
				t.Stop()
			}
		}
		nw.stopLinger()
	}
	h.closed = true
}

// wake wakes nw's waiting Acquires, except those that master 0 says are
// behind another waiter, and those whose own attempt's clean-up this may
// be (waker.own): ended is the value of the hold that ended, "" when a key
// went while no one held the lock. h.mu is held.
func (nw *nameWatch) wake(ended string) {
	for k := range nw.wakers {
		if !k.behind && (k.own == "" || ended != "" && ended != k.own) {
			k.signal()
		}
	}
}

func (k *waker) signal() {
	select {
	case k.ch <- struct{}{}:
	default:
	}
}

// setBehind records whether master 0 said, at k's last attempt, that an
// earlier waiter is first in line (an announcement since that k is first
// wins), and own (see waker). It returns whether k can sleep until master
// 0 announces it first (waker.sleeps), as long as this Client hears master
// 0 on the name (subscribed there, and the key read since): without
// channel rights no announcement comes, and a waiter sleeping for one left
// the lock free for up to RetryMaxDelay at each turn
// (TestACLNoChannelRightsWaiterBehindNotLate). heard0 says whether master
// 0's answer came in time for the attempt's verdict: when it did not,
// behind says nothing, and the last word that did stands. inLine is false
// when the waiter has left every line (too few masters answered): no
// announcement can name it then.
func (h *watchHub) setBehind(nw *nameWatch, k *waker, behind, heard0, inLine bool, own string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	k.behind = behind && nw.head != k.value
	k.own = own
	nw.marks++
	switch {
	case !inLine:
		k.sleeps = false
	case heard0:
		k.sleeps = k.behind
	}
	return k.sleeps && nw.state.Known(0)
}

// lineRead records master 0's line as a read sent when nw.marks was marks
// found it: its first waiter (announceHead), or none (lineEmpty). h.mu is
// held.
func (nw *nameWatch) lineRead(head []string, marks uint64) {
	switch {
	case len(head) == 1:
		nw.announceHead(head[0])
	case nw.marks == marks:
		nw.lineEmpty()
	}
}

// lineEmpty records master 0's word, read with the key (as the Client's
// connection there subscribes to the name or resubscribes, and at each
// refresh), that its waiting line for the name is empty: a restart lost
// it, or every waiter left. A waiter marked behind would sleep through the
// release, waiting for an announcement that cannot come now that no line
// names it (TestAdv21Master0RestartedWaiterBehindWoken): none is behind,
// and each is woken if the lock is free. The caller applies it only when
// no attempt marked a waiter since the read was sent (marks): an attempt
// answered after the read may have put one behind a waiter that joined
// meanwhile (TestWakerStaleEmptyLineKeepsMark). h.mu is held.
func (nw *nameWatch) lineEmpty() {
	nw.head = ""
	for k := range nw.wakers {
		if k.behind || k.sleeps {
			k.behind, k.sleeps = false, false
			if nw.state.Free() {
				k.signal()
			}
		}
	}
}

// announceHead records master 0's word that value is now first in line.
// Its waiter is woken when the lock comes free, or now if it seems free
// already (the one before gave up): usually the one before has just won,
// and an attempt now would only be refused. A waiter whose own clean-up
// may announce it (waker.own) is woken only when it was behind: its own
// clean-up cannot move it from behind to first. h.mu is held.
func (nw *nameWatch) announceHead(value string) {
	nw.head = value
	for k := range nw.wakers {
		if k.value == value {
			wasBehind := k.behind
			k.behind, k.sleeps = false, false
			if nw.state.Free() && (k.own == "" || wasBehind) {
				k.signal()
			}
		}
	}
}
