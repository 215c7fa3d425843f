package distlock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Operations a masterWatch runs in order on its connection.
const (
	opSubscribe = iota
	opUnsubscribe
)

type op struct {
	kind       int
	name       string
	channelKey string     // for unsubscribe: the key (the name is gone from the hub)
	ack        chan<- ack // for subscribe: told when done
}

// ack is a master's answer to a subscribe op.
type ack struct {
	node int
	err  error
}

// masterWatch owns one master's watch connection.
type masterWatch struct {
	hub  *watchHub
	node *node

	signal   chan struct{} // a token: ops or refresh have work
	keyspace string        // "__keyspace@<db>__:", the keyspace channels' prefix

	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	mu      sync.Mutex // guards ops, refresh and recheck
	ops     []op
	refresh map[string]bool // names whose key to read again
	recheck bool            // read (and set) notify-keyspace-events again

	// rereadAll asks for every watched name to be read again: the master
	// told the Client's key tracking that every key may have changed
	// (rereadEverything).
	rereadAll atomic.Bool

	// Guarded by hub.mu, reset by each session:
	notify      string      // the master's notify-keyspace-events
	notifyKnown bool        // notify is what the master has (configured or read)
	pending     *scriptMsg  // the last script message, until its events came
	confirm     *time.Timer // gives up on pending after confirmWait
	// doubt holds, in order, a script message no event confirmed and
	// every message after it, until notify-keyspace-events read again
	// tells whether the master was publishing the events (dropPending);
	// nil when none is in doubt.
	doubt     []rueidis.PubSubMessage
	lenient   bool        // settling doubt: messages are taken as they come
	recheckAt int64       // when the flags may be read again (c.now)
	rechecker *time.Timer // reads them then, for the messages in doubt
}

// scriptChannelPrefix starts every lock's watch channel: the scripts
// publish on scriptChannelPrefix + key (see acquire.lua).
const scriptChannelPrefix = "__distlock__:"

func (m *masterWatch) enqueue(o op) {
	m.mu.Lock()
	m.ops = append(m.ops, o)
	m.mu.Unlock()
	m.poke()
}

func (m *masterWatch) markRefresh(name string) {
	m.mu.Lock()
	m.refresh[name] = true
	m.mu.Unlock()
	m.poke()
}

func (m *masterWatch) poke() {
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

// channel is the keyspace channel of key on this master.
func (m *masterWatch) channel(key string) string {
	return m.keyspace + key
}

// channels are the channels a watch of key subscribes to: its keyspace
// channel and its watch channel.
func (m *masterWatch) channels(key string) []string {
	return []string{m.channel(key), scriptChannelPrefix + key}
}

// run connects, subscribes, and serves ops until the Client closes,
// reconnecting after every failure.
func (m *masterWatch) run() {
	c := m.hub.c
	b := redialBackoff(50*time.Millisecond, 2*time.Second)
	for sessions := 0; ; {
		subscribed := false
		err := m.session(&subscribed, sessions)
		if subscribed {
			sessions++
			b.Reset() // it worked: reconnect quickly next time
			if c.stopping.Err() == nil {
				c.tel.log.Warn("distlock: watch connection lost; subscribing again", "master", m.node.index, "address", m.node.addr, "error", err.Error())
			}
		}
		// Disconnected: what this master said no longer counts, and what
		// it publishes until it is back is lost (Event.Unseen).
		m.hub.mu.Lock()
		m.endSession()
		for _, nw := range m.hub.names {
			m.hub.set(nw, m.node.index, false, "", 0, 0)
			nw.unseen()
		}
		m.hub.mu.Unlock()
		if errors.Is(err, ErrClosed) {
			return
		}
		// Fail the subscriptions waiting meanwhile; they are redone on
		// reconnect.
		t := time.NewTimer(b.NextBackOff())
		for wait := true; wait; {
			select {
			case <-c.stop:
				t.Stop()
				return
			case <-t.C:
				wait = false
			case <-m.signal:
				m.failOps(err)
			}
		}
	}
}

func (m *masterWatch) failOps(err error) {
	m.mu.Lock()
	ops := m.ops
	m.ops = nil
	m.mu.Unlock()
	for _, o := range ops {
		if o.ack != nil {
			o.ack <- ack{m.node.index, &NodeError{Addr: m.node.addr, Err: ownTimeout(err, m.hub.c.cfg.dialTimeout)}}
		}
	}
}

// session is one connection's life: it returns why it ended. before
// counts the sessions that subscribed before this one.
func (m *masterWatch) session(subscribed *bool, before int) error {
	c := m.hub.c
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	rc, err := m.node.get()
	if err != nil {
		return err
	}
	dc, release := rc.Dedicate()
	defer func() {
		// Close the connection rather than hand it back: handing it back
		// unsubscribes and waits for the answer, which a paused master
		// never gives.
		dc.Close()
		release()
	}()
	errc := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage:      m.onMessage,
		OnSubscription: func(rueidis.PubSubSubscription) {},
	})
	ctx, cancel := context.WithCancel(c.bg)
	defer cancel()
	stopCancel := context.AfterFunc(c.stopping, cancel) // Close ends a session at once
	defer stopCancel()
	if err := m.reconfigure(ctx, dc); err != nil {
		m.failOps(err)
		return err
	}
	// Subscribe every name watched now, then read each key: what happened
	// while we were not subscribed is lost, but the key tells the state.
	// That read is every name's: a reread asked for before it is done by
	// it (the last session's connection, closing, asks for one).
	m.rereadAll.Store(false)
	names := m.watched()
	if _, err := m.subscribe(ctx, dc, names); err != nil {
		return err
	}
	*subscribed = true
	if before > 0 {
		m.resubscribed(names)
	}
	return m.serve(ctx, dc, errc)
}

// rereadEverything asks for every name watched on the master to be read
// again there, as soon as its watch connection can: the master said that
// every key may have changed (keyEvents.changed: a FLUSHDB or FLUSHALL, or
// the Client's connection to it was replaced). A flush names no key: it
// sends no keyspace event and no script message, so without this read a
// hold flushed away would end only at its expiry, and a waiter marked
// behind a line the flush emptied would sleep (TestWatchFlushEndsHold).
// It runs on a connection's reading goroutine: it takes no lock.
func (m *masterWatch) rereadEverything() {
	m.rereadAll.Store(true)
	m.poke()
}

// retrack makes sure the Client's pipelined connection to the master,
// the one that tracks keys, is up before the watched names are read
// again. The message that every key may have changed also comes when that
// connection closes, and rueidis dials again only for the next command
// sent there: a Client that only watches sends none, and a flush while
// it is down would be heard by no one (TestWatchFlushWhileTrackingDown).
// A PING dials it, tracking on from its first round trip; the names are
// read after its answer, so a flush before it is found by the read and
// one after it is heard.
func (m *masterWatch) retrack(ctx context.Context) {
	rc, err := m.node.get()
	if err != nil {
		return // being dialled: its first answer comes before the next read
	}
	pctx, cancel := context.WithTimeout(ctx, m.hub.c.cfg.dialTimeout)
	defer cancel()
	rc.Do(pctx, rc.B().Ping().Build())
}

// watchedNames returns the names watched now.
func (h *watchHub) watchedNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.namesLocked()
}

// namesLocked returns the names watched now. h.mu is held.
func (h *watchHub) namesLocked() []string {
	names := make([]string, 0, len(h.names))
	for name := range h.names {
		names = append(names, name)
	}
	return names
}

// watched returns the names watched now, and forgets the script message
// of the session before, if any.
func (m *masterWatch) watched() []string {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.pending = nil
	return m.hub.namesLocked()
}

// resubscribed reports a session that subscribed names again after an
// earlier one, and marks their watchers: what the master published
// between the two sessions is lost (Event.Unseen).
func (m *masterWatch) resubscribed(names []string) {
	m.hub.c.resubscribed(m.node, len(names))
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	for _, name := range names {
		if nw := m.hub.names[name]; nw != nil {
			nw.unseen()
		}
	}
}

// serve runs the work queued for the session on dc until the connection
// fails (errc) or the Client closes: it reads notify-keyspace-events
// again when asked to, runs the ops, and reads again the keys marked for
// refresh. It returns why the session ended.
func (m *masterWatch) serve(ctx context.Context, dc rueidis.DedicatedClient, errc <-chan error) error {
	c := m.hub.c
	for {
		recheck := m.takeRecheck()
		if recheck {
			// Before the ops are taken: an error here leaves them queued
			// for the next session.
			if err := m.reconfigure(ctx, dc); err != nil {
				return err
			}
		}
		ops, refresh := m.takeWork()
		if m.rereadAll.Swap(false) {
			m.retrack(ctx)
			if refresh == nil {
				refresh = make(map[string]bool)
			}
			for _, name := range m.hub.watchedNames() {
				refresh[name] = true
			}
		}
		if err := m.runOps(ctx, dc, ops); err != nil {
			return err
		}
		if err := m.readAgain(ctx, dc, refresh); err != nil {
			return err
		}
		if len(ops) > 0 || len(refresh) > 0 || recheck {
			continue
		}
		select {
		case <-c.stop:
			return ErrClosed
		case err, ok := <-errc:
			if !ok || err == nil {
				err = errors.New("watch connection closed")
			}
			return err
		case <-m.signal:
		}
	}
}

// takeRecheck reports whether notify-keyspace-events is to be read again,
// and clears the request.
func (m *masterWatch) takeRecheck() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	recheck := m.recheck
	m.recheck = false
	return recheck
}

// takeWork takes the ops queued and the names marked for refresh (nil
// when none), leaving both empty.
func (m *masterWatch) takeWork() (ops []op, refresh map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ops = m.ops
	m.ops = nil
	if len(m.refresh) > 0 {
		refresh, m.refresh = m.refresh, make(map[string]bool)
	}
	return ops, refresh
}

// runOps runs ops in order on dc, telling each op's ack how it went. At
// the first error that ends the connection it puts the ops not yet run
// back at the head of the queue and returns the error.
func (m *masterWatch) runOps(ctx context.Context, dc rueidis.DedicatedClient, ops []op) error {
	for k, o := range ops {
		keyErr, err := m.runOp(ctx, dc, o)
		if keyErr != nil {
			// This key alone cannot be watched here (WRONGTYPE):
			// its Watch is told, the connection goes on.
			if o.ack != nil {
				o.ack <- ack{m.node.index, &NodeError{Addr: m.node.addr, Err: keyErr}}
			}
			continue
		}
		if o.ack != nil {
			if err != nil {
				o.ack <- ack{m.node.index, &NodeError{Addr: m.node.addr, Err: ownTimeout(err, m.hub.c.cfg.dialTimeout)}}
			} else {
				o.ack <- ack{m.node.index, nil}
			}
		}
		if err != nil {
			// The ops not yet run go back to the queue: the next
			// session (or the wait between) answers them.
			m.mu.Lock()
			m.ops = append(ops[k+1:len(ops):len(ops)], m.ops...)
			m.mu.Unlock()
			return err
		}
	}
	return nil
}

// runOp runs one op on dc. It returns keyErr when the op's key alone
// cannot be watched on this master (see read), and err when the
// connection failed.
func (m *masterWatch) runOp(ctx context.Context, dc rueidis.DedicatedClient, o op) (keyErr, err error) {
	switch o.kind {
	case opSubscribe:
		keyErrs, err := m.subscribe(ctx, dc, []string{o.name})
		if err != nil {
			return nil, err
		}
		return keyErrs[o.name], nil
	case opUnsubscribe:
		uctx, ucancel := context.WithTimeout(ctx, m.hub.c.cfg.dialTimeout)
		defer ucancel()
		return nil, dc.Do(uctx, dc.B().Unsubscribe().Channel(m.channels(o.channelKey)...).Build()).Error()
	}
	return nil, nil
}

// readAgain reads the keys of the names in refresh, and returns the error
// that ends the connection, if any.
func (m *masterWatch) readAgain(ctx context.Context, dc rueidis.DedicatedClient, refresh map[string]bool) error {
	if len(refresh) == 0 {
		return nil
	}
	names := make([]string, 0, len(refresh))
	for name := range refresh {
		names = append(names, name)
	}
	_, err := m.read(ctx, dc, names)
	return err
}

// endSession forgets what one session's messages left unsettled: the
// reads after the next subscribe tell the state. h.mu is held.
func (m *masterWatch) endSession() {
	m.doubt = nil
	m.lenient = false
	m.pending = nil
	if m.confirm != nil {
		m.confirm.Stop()
	}
	if m.rechecker != nil {
		m.rechecker.Stop()
	}
}

// subscribe subscribes to the names' channels and reads their keys, on the
// same connection so that the read follows the subscription. It returns
// the errors of keys that cannot be read (see read), and the error that
// ends the connection.
func (m *masterWatch) subscribe(ctx context.Context, dc rueidis.DedicatedClient, names []string) (map[string]error, error) {
	if len(names) == 0 {
		return nil, nil
	}
	m.hub.mu.Lock()
	chans := make([]string, 0, len(names))
	live := names[:0]
	for _, name := range names {
		if nw := m.hub.names[name]; nw != nil {
			chans = append(chans, m.channels(nw.req.key)...)
			live = append(live, name)
		}
	}
	m.hub.mu.Unlock()
	if len(chans) == 0 {
		return nil, nil
	}
	sctx, cancel := context.WithTimeout(ctx, m.hub.c.cfg.dialTimeout)
	defer cancel()
	if err := dc.Do(sctx, dc.B().Subscribe().Channel(chans...).Build()).Error(); err != nil {
		return nil, err
	}
	return m.read(ctx, dc, live)
}
