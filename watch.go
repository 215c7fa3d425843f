package distlock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/watch"
)

// Watching a lock.
//
// Each Client keeps one watch connection per master (a rueidis dedicated
// connection), shared by every Watch call and every waiting Acquire. For
// each watched name it subscribes, once however many watchers the name
// has (and stays subscribed for watchLinger after the last has gone), to
// two channels: the lock's watch channel __distlock__:<key>, on
// which distlock's own scripts publish every write they make to the key
// (acquire.lua "set <ttl> <value>" and "expire <ttl> <value>", renew.lua
// "expire <ttl> <value>", release.lua "del 0 <value>"; and on master 0,
// leave.lua "head 0 <value>", the new first waiter in line, which wakes
// that waiter alone: see retry.go), and the key's
// keyspace channel __keyspace@<db>__:<key>, for what no script reports:
// Redis deleting the key ("expired", "evicted") and other clients' writes.
// Each master's reports (a script's message, a keyspace event, a read)
// go, in that master's order, into the name's merged state
// (internal/watch, pure data with its own table tests): per value, a
// hold is acquired once a majority of masters have reported holding it,
// cumulatively rather than at one instant (a watcher's connections deliver
// at different speeds, so a hold of 1 ms can end on one master's stream
// before it begins on another's), and ends once too few masters may still
// hold it: released when a majority reported its delete, expired
// otherwise. A value is never assumed not to come back: held again after
// it went, it is a new hold.
//
// A script message carries the whole new state, so distlock's own writes
// cost a watcher no read. Each script publishes just before its write, and
// both reach a subscriber in the order the master ran them, on the one
// connection: the message comes right before the keyspace events its write
// causes ("set" and "expire" for a SET with PX, "expire" for PEXPIRE, "del"
// for DEL; each only where notify-keyspace-events enables it), with nothing
// in between (a script runs alone). So:
//   - a keyspace event that the message just before it announced is
//     explained, and needs no read; a "set" or "expire" nobody announced is
//     another client's write, and the key is read; a "del" is a release;
//   - where the master is known to publish the keyspace event a message
//     announces (notify-keyspace-events, as configured or read at connect),
//     the message takes effect only when that event confirms it. Pub/sub
//     channels are not per database, so a Client on another database of
//     the same server, with the same key prefix, publishes on the same
//     watch channel; the keyspace channel, which names the database, tells
//     them apart. A message no event confirms (within confirmWait, or
//     before another message or event comes) is dropped, the key read
//     instead, and notify-keyspace-events read (and set) again: another
//     program may have changed it since the connection began.
//     While notify-keyspace-events is read again, that message and every
//     one after it on the connection are held, in order; where the flags
//     turn out to have been missing, they are then taken as they came, so
//     that holds made meanwhile, however short, are still reported.
//   - where it is not (notify-keyspace-events lacks those flags, or cannot
//     be read: Config.SkipNotifyConfig on a server that refuses CONFIG GET),
//     a message takes effect as it comes. Acquire, renewal and release are
//     still seen; expiry through the scheduled read below; others' writes
//     not at all, and Clients on other databases of the server must then
//     use another key prefix.
//
// Events are hints, never the truth:
//   - pub/sub drops what was published while disconnected, so after every
//     (re)subscribe the key is read again on that master;
//   - "expired" fires only when Redis deletes the key, which on a busy
//     master can be seconds late; so a read is scheduled at the holder's
//     known expiry (its PTTL), and reading forces the deletion;
//   - notify-keyspace-events is not kept across a master's restart, so it
//     is set again after every reconnect (unless Config says not to).

// EventType says what changed.
type EventType int

const (
	// EventAcquired: a value (a lease's) was reported held by a majority
	// of masters. The masters' reports count cumulatively: each master
	// must have held the value at some point, within a short window of
	// the others as this Client heard them, not all at one instant.
	EventAcquired EventType = iota + 1
	// EventReleased: the hold of the last EventAcquired ended, and a
	// majority of masters reported the delete of its value (its holder's
	// release, or a DEL by another program), or were found without it
	// before its expiry when read again after their connection was lost.
	EventReleased
	// EventExpired: the hold of the last EventAcquired ended otherwise:
	// its keys expired (a holder that died, a lease lost, a release that
	// reached too few masters), or a new holder replaced it.
	EventExpired
)

func (t EventType) String() string {
	switch t {
	case EventAcquired:
		return "acquired"
	case EventReleased:
		return "released"
	case EventExpired:
		return "expired"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// An Event is a change of a lock's state, as a majority of masters sees it.
type Event struct {
	Name string
	Type EventType
	Time time.Time // when this Client saw the change
	// Masters is how many masters reported the new holder's value
	// (EventAcquired), or are known to no longer hold the old one.
	Masters int
	// Initial marks the first event of a Watch, when the lock was already
	// held as Watch subscribed: a state found, not a change seen.
	Initial bool
	// Missed counts the events dropped just before this one because the
	// receiver did not keep up (see Client.Watch).
	Missed int
	// Unseen is set on the first event after this Client's watch
	// connection to a master was lost or made again: what that master
	// published meanwhile was lost, so holds that needed it may have come
	// and gone with no event, and this event may be told from reads
	// rather than seen (see Client.Watch).
	Unseen bool
}

// WatchBuffer is how many events a Watch channel holds for a slow receiver.
const WatchBuffer = 64

// Watch reports the changes of the lock name's state. It returns once it
// is subscribed on a majority of masters (or fails, with an error saying
// what was refused when a master does not allow CONFIG SET
// notify-keyspace-events). If the lock is held at that moment, the first
// event is an EventAcquired with Initial set. The channel is closed when
// ctx ends or the Client closes.
//
// Every hold that a majority of masters reported, however short, gives
// one EventAcquired, then one EventReleased or EventExpired, in that
// order; holds do not overlap in the events (a new holder's
// EventAcquired comes after the old one's end). A hold is a value on the
// keys: a lease's, from its acquire to its release or expiry, renewals
// and Extend included. So
//   - a value that a majority held but whose Acquire did not keep it (it
//     yielded to an earlier waiter, or its validity ran out) is a hold,
//     reported acquired and at once released;
//   - a lock handed from one goroutine to another of the same Client
//     keeps its keys (see Client.Acquire): Watch sees it stay held.
//
// What can be coalesced: while this Client's watch connection to a master
// is down, what that master publishes is lost. A hold that needed that
// master (held on a bare majority including it) can come and go with no
// event, and a hold's end seen only as a key found gone when the master is
// read again (after it reconnects) is told as released if found gone
// before its expiry. The first event after a connection was lost or made
// again has Unseen set. A receiver that falls behind never slows the
// Client: once WatchBuffer events are waiting, the oldest is dropped for
// each new one, and the next event delivered counts the dropped ones in
// Missed. Events are hints about the lock's state; only holding a Lease
// means holding the lock.
//
// A name whose key cannot be read as a lock (another type: WRONGTYPE)
// fails its Watch where a majority of masters say so; it costs no other
// name anything. A key of another program's with a value longer than 1 KiB
// is read in part (its start and length tell it apart).
func (c *Client) Watch(ctx context.Context, name string) (<-chan Event, error) {
	req, err := c.newRequest("watch", name, nil)
	if err != nil {
		return nil, err
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.exit()
	w := &watcher{ch: make(chan Event, WatchBuffer)}
	nw, err := c.watches.add(ctx, req, w, nil)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { c.watches.remove(nw, w, nil) })
	return w.ch, nil
}

// watcher is one Watch call's channel.
type watcher struct {
	ch          chan Event
	missed      int
	unseen      bool // the next event gets Unseen
	closed      bool
	initialized bool // an event has been sent: no Initial one any more
}

// send delivers ev without blocking: a full channel loses its oldest event.
// The caller holds the hub's mu, which makes it the only sender.
func (w *watcher) send(ev Event) {
	if w.closed {
		return
	}
	w.initialized = true
	for {
		ev.Missed = w.missed
		ev.Unseen = ev.Unseen || w.unseen
		select {
		case w.ch <- ev:
			w.missed, w.unseen = 0, false
			return
		default:
		}
		select {
		case old := <-w.ch:
			w.missed += 1 + old.Missed // keep the count the dropped one carried
			w.unseen = w.unseen || old.Unseen
		default:
		}
	}
}

// masterState is what one master last said about one key, as the hub
// needs it beside the merged state: to tell how a value went when a read
// finds it gone, and to read the key at the holder's expiry.
type masterState struct {
	value   string // "" when free
	expires int64  // on c's monotonic clock; 0 when unknown or free
	timer   *time.Timer
}

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
	c       *Client
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
// place lapses unless renewed (retry.go). Guarded by the hub's mu.
type waker struct {
	ch     chan struct{}
	value  string
	behind bool
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
		return &nameWatch{req: req}, nil
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
	if _, n := nw.state.Holder(); nw.state.Started() && !nw.state.Free() && !w.initialized {
		w.send(Event{Name: req.name, Type: EventAcquired, Time: time.Now(), Masters: n, Initial: true})
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
// watch connection was lost or made again. h.mu must be held.
func (nw *nameWatch) unseen() {
	for w := range nw.watchers {
		w.unseen = true
	}
}

// stopLinger ends nw's linger, if any: a linger timer that fired meanwhile
// ends nothing. h.mu must be held.
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

// set records what master m says about nw's key (known false: m is
// unreachable), merges it (internal/watch) and emits the events of the
// changes it makes. how says how the value m held before went, when value
// is another or "" (0: set tells from the value's known expiry). h.mu must
// be held.
func (h *watchHub) set(nw *nameWatch, m int, known bool, value string, pttl time.Duration, how watch.How) {
	s := &nw.per[m]
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	now := h.c.now()
	if known {
		if how == 0 && s.value != "" && s.value != value {
			// Gone at or after its known expiry: expired. Gone before
			// it: deleted, the only way a key goes early but for a
			// master losing its data (a restart, FLUSHALL), which a
			// majority does not do at once.
			how = watch.HowDeleted
			if s.expires != 0 && now >= s.expires-int64(5*time.Millisecond) {
				how = watch.HowExpired
			}
		}
		s.value, s.expires = value, 0
		// PTTL 0 is a key with less than a millisecond left, not one
		// without expiry (-1): it too gets its expiry and its read.
		if value != "" && pttl >= 0 {
			s.expires = now + int64(pttl)
			// Read the key again when it should expire: that forces Redis
			// to delete it (and publish "expired") even on a busy master.
			name, mw := nw.req.name, h.masters[m]
			s.timer = time.AfterFunc(pttl+time.Millisecond, func() { mw.markRefresh(name) })
		}
	}
	// (Unreachable, s keeps what m last said: the read after it
	// reconnects compares with it.)
	changes := nw.state.Observe(watch.Report{Master: m, Known: known, Value: value, How: how}, now)
	at := time.Now()
	for _, c := range changes {
		ev := Event{Name: nw.req.name, Time: at, Masters: c.Masters, Initial: c.Initial}
		switch c.Kind {
		case watch.Acquired:
			ev.Type = EventAcquired
		case watch.Released:
			ev.Type = EventReleased
		case watch.Expired:
			ev.Type = EventExpired
		}
		if ev.Initial {
			// The state found as the name's watch began: for watchers
			// that have had no event yet.
			for w := range nw.watchers {
				if !w.initialized {
					w.send(ev)
				}
			}
			continue
		}
		h.emit(nw, ev)
	}
	// A key gone while no one holds a majority: wake the waiters even
	// without a change of state. A holder that took and dropped the lock
	// between two reads never showed as held, so its release made no
	// event, and the waiters would sleep out their backoff.
	if known && value == "" && nw.state.Started() && nw.state.Free() {
		nw.wake()
	}
}

// emit sends ev to every watcher of nw, and wakes its waiters when the
// lock became free. h.mu must be held.
func (h *watchHub) emit(nw *nameWatch, ev Event) {
	h.c.watchEvent(ev.Type)
	for w := range nw.watchers {
		w.send(ev)
	}
	if ev.Type != EventAcquired {
		nw.wake()
	}
}

// wake wakes nw's waiting Acquires, except those that master 0 says are
// behind another waiter. h.mu must be held.
func (nw *nameWatch) wake() {
	for k := range nw.wakers {
		if !k.behind {
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
// earlier waiter is first in line; an announcement since that k is first
// wins.
func (h *watchHub) setBehind(nw *nameWatch, k *waker, behind bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k.behind = behind && nw.head != k.value
}

// announceHead records master 0's word that value is now first in line.
// Its waiter is woken when the lock comes free, or now if it seems free
// already (the one before gave up): usually the one before has just won,
// and an attempt now would only be refused. h.mu must be held.
func (nw *nameWatch) announceHead(value string) {
	nw.head = value
	for k := range nw.wakers {
		if k.value == value {
			k.behind = false
			if nw.state.Free() {
				k.signal()
			}
		}
	}
}

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

	mu      sync.Mutex // guards ops, refresh and recheck
	ops     []op
	refresh map[string]bool // names whose key to read again
	recheck bool            // read (and set) notify-keyspace-events again

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

// confirmWait is how long a script message waits for the keyspace event
// that confirms it. The event comes right after it on the same connection,
// so one missing after that long was not published: another program
// changed notify-keyspace-events (or the message came from another
// database). The message is then dropped, the key read instead, and the
// setting read again.
const confirmWait = 100 * time.Millisecond

// scriptChannelPrefix starts every lock's watch channel: the scripts
// publish on scriptChannelPrefix + key (see acquire.lua).
const scriptChannelPrefix = "__distlock__:"

// scriptMsg is one script message: the state it announces on one master,
// and the keyspace events its write is still to cause there.
type scriptMsg struct {
	nw      *nameWatch
	name    string // the message's lock name and body, to be handled again
	body    string
	went    string // for a delete: the value deleted
	value   string // "" for a delete
	pttl    time.Duration
	want    []string // keyspace events to come, in order
	applied bool     // the state has been recorded
	at      int64    // when it came (c.now)
}

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
	delay := 50 * time.Millisecond
	for sessions := 0; ; {
		subscribed := false
		err := m.session(&subscribed, sessions)
		if subscribed {
			sessions++
			delay = 50 * time.Millisecond // it worked: reconnect quickly next time
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
		t := time.NewTimer(delay)
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
		delay = min(2*delay, 2*time.Second)
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
	m.hub.mu.Lock()
	m.pending = nil
	var names []string
	for name := range m.hub.names {
		names = append(names, name)
	}
	m.hub.mu.Unlock()
	if _, err := m.subscribe(ctx, dc, names); err != nil {
		return err
	}
	*subscribed = true
	if before > 0 {
		c.resubscribed(m.node, len(names))
		m.hub.mu.Lock()
		for _, name := range names {
			if nw := m.hub.names[name]; nw != nil {
				nw.unseen()
			}
		}
		m.hub.mu.Unlock()
	}
	for {
		m.mu.Lock()
		recheck := m.recheck
		m.recheck = false
		m.mu.Unlock()
		if recheck {
			// Before the ops are taken: an error here leaves them queued
			// for the next session.
			if err := m.reconfigure(ctx, dc); err != nil {
				return err
			}
		}
		m.mu.Lock()
		ops := m.ops
		m.ops = nil
		var refresh map[string]bool
		if len(m.refresh) > 0 {
			refresh, m.refresh = m.refresh, make(map[string]bool)
		}
		m.mu.Unlock()
		for k, o := range ops {
			var err error
			switch o.kind {
			case opSubscribe:
				var keyErrs map[string]error
				keyErrs, err = m.subscribe(ctx, dc, []string{o.name})
				if err == nil && keyErrs[o.name] != nil && o.ack != nil {
					// This key alone cannot be watched here (WRONGTYPE):
					// its Watch is told, the connection goes on.
					o.ack <- ack{m.node.index, &NodeError{Addr: m.node.addr, Err: keyErrs[o.name]}}
					continue
				}
			case opUnsubscribe:
				uctx, ucancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
				err = dc.Do(uctx, dc.B().Unsubscribe().Channel(m.channels(o.channelKey)...).Build()).Error()
				ucancel()
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
		if len(refresh) > 0 {
			names := make([]string, 0, len(refresh))
			for name := range refresh {
				names = append(names, name)
			}
			if _, err := m.read(ctx, dc, names); err != nil {
				return err
			}
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

// notifyFlags are the keyspace events Watch asks for: K keyspace channels,
// g generic ("del", and "expire", which confirms the scripts' messages),
// x "expired". The scripts' messages make "$" ("set") unneeded: it would
// only show another client's SET without expiry, and makes the master
// publish a notification for every string write to any key.
const notifyFlags = "Kgx"

// configure makes sure notify-keyspace-events has notifyFlags, keeping
// the flags already set, and returns the master's flags before (had) and
// after. With
// Config.SkipNotifyConfig it only reads them, and a master that refuses
// that leaves them unknown (known false), which is no error: Watch then
// goes by the scripts' messages alone.
func (m *masterWatch) configure(ctx context.Context, dc rueidis.DedicatedClient) (had, flags string, known bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, m.hub.c.cfg.dialTimeout)
	defer cancel()
	cur, err := dc.Do(ctx, dc.B().ConfigGet().Parameter("notify-keyspace-events").Build()).AsStrMap()
	if err != nil {
		if _, refused := rueidis.IsRedisErr(err); refused && m.hub.c.cfg.skipNotifyConfig {
			return "", "", false, nil
		}
		return "", "", false, m.configError(err)
	}
	have := cur["notify-keyspace-events"]
	if m.hub.c.cfg.skipNotifyConfig {
		return have, have, true, nil
	}
	want := have
	for _, f := range notifyFlags {
		if strings.ContainsRune(have, f) || (f != 'K' && strings.ContainsRune(have, 'A')) {
			continue
		}
		want += string(f)
	}
	if want == have {
		return have, have, true, nil
	}
	if err := dc.Do(ctx, dc.B().ConfigSet().ParameterValue().ParameterValue("notify-keyspace-events", want).Build()).Error(); err != nil {
		return "", "", false, m.configError(err)
	}
	return have, want, true, nil
}

// reconfigure runs configure and records the master's flags. Messages
// held in doubt (see doubt) are then settled: taken as they came where the
// master's flags, as they were before configure set them again, lacked
// the events that would have confirmed them, and otherwise matched to the
// events that followed them, as always.
func (m *masterWatch) reconfigure(ctx context.Context, dc rueidis.DedicatedClient) error {
	had, notify, known, err := m.configure(ctx, dc)
	if err != nil {
		return err
	}
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.notify, m.notifyKnown = notify, known
	m.settleDoubt(!known || !publishesIn(had, "expire"))
	return nil
}

// publishes reports whether this master is known to publish the keyspace
// event ev ("new", "set", "expire" or "del") on keyspace channels. h.mu
// must be held.
func (m *masterWatch) publishes(ev string) bool {
	return m.notifyKnown && publishesIn(m.notify, ev)
}

// publishesIn reports whether a master with notify-keyspace-events flags
// publishes the keyspace event ev on keyspace channels.
func publishesIn(flags, ev string) bool {
	if !strings.ContainsRune(flags, 'K') {
		return false
	}
	switch ev {
	case "new": // not part of "A"
		return strings.ContainsRune(flags, 'n')
	case "set":
		return strings.ContainsAny(flags, "$A")
	}
	return strings.ContainsAny(flags, "gA") // expire, del
}

// configError explains a refused CONFIG; other errors pass through.
func (m *masterWatch) configError(err error) error {
	if m.hub.c.bg.Err() != nil {
		return ErrClosed
	}
	if _, refused := rueidis.IsRedisErr(err); !refused {
		return err
	}
	return fmt.Errorf("cannot enable keyspace notifications (CONFIG GET/SET notify-keyspace-events: %w): set notify-keyspace-events to include %q on this master (in redis.conf or your provider's settings), then set Config.SkipNotifyConfig", err, notifyFlags)
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

// readMax is how much of a key's value a read asks for. distlock's values
// are 32 characters; a longer one is another program's, told apart by its
// first readMax bytes and its length. A whole value of any size would not
// do: one over the master's pub/sub output buffer limit (client-output-
// buffer-limit pubsub, 32 MB by default) makes the master close the
// connection, and with it every watch of the Client on that master.
const readMax = 1024

// read reads the names' keys (value and PTTL) and records what it finds.
// A key that cannot be read (another type than a string: WRONGTYPE) costs
// only its own name: its state on this master is unknown, and its error is
// returned in the map. The error returned alone ends the connection.
func (m *masterWatch) read(ctx context.Context, dc rueidis.DedicatedClient, names []string) (map[string]error, error) {
	m.hub.mu.Lock()
	keys := make([]string, 0, len(names))
	waits := make([]string, 0, len(names))
	live := make([]*nameWatch, 0, len(names))
	seqs := make([]uint64, 0, len(names))
	for _, name := range names {
		if nw := m.hub.names[name]; nw != nil {
			keys = append(keys, nw.req.key)
			waits = append(waits, nw.req.waitKey)
			live = append(live, nw)
			seqs = append(seqs, nw.seq[m.node.index])
		}
	}
	m.hub.mu.Unlock()
	if len(keys) == 0 {
		return nil, nil
	}
	// On master 0 the read also asks who is first in the waiting line: a
	// "head" message published before this connection subscribed is lost,
	// and a waiter that missed being announced first would sleep through
	// the release, marked behind (TestWaiterSubscribedAfterHeadAnnounced).
	line := m.node.index == 0
	stride := 3
	if line {
		stride = 4
	}
	cmds := make(rueidis.Commands, 0, stride*len(keys))
	for i, k := range keys {
		cmds = append(cmds, dc.B().Pttl().Key(k).Build(), dc.B().Getrange().Key(k).Start(0).End(readMax-1).Build(), dc.B().Strlen().Key(k).Build())
		if line {
			cmds = append(cmds, dc.B().Zrange().Key(waits[i]).Min("0").Max("0").Build())
		}
	}
	rctx, cancel := context.WithTimeout(ctx, m.hub.c.cfg.dialTimeout)
	defer cancel()
	res := dc.DoMulti(rctx, cmds...)
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	var keyErrs map[string]error
	for i, nw := range live {
		if m.hub.names[nw.req.name] != nw {
			continue // unwatched meanwhile
		}
		r := res[stride*i:]
		if line {
			if head, err := r[3].AsStrSlice(); err == nil && len(head) == 1 {
				nw.announceHead(head[0])
			}
		}
		value, pttl, err := readValue(r[0], r[1], r[2])
		if err != nil {
			if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
				return keyErrs, err // the connection's, not the key's
			}
			// This key alone (say, WRONGTYPE): its state is unknown.
			if keyErrs == nil {
				keyErrs = make(map[string]error)
			}
			keyErrs[nw.req.name] = fmt.Errorf("watch %q: reading %s: %w", nw.req.name, nw.req.key, err)
			m.hub.set(nw, m.node.index, false, "", 0, 0)
			continue
		}
		if nw.seq[m.node.index] != seqs[i] {
			// A message was handled after this read was sent: it may have
			// come after our reply (rueidis hands the reply over first,
			// then goes on with the messages), so the read may be older
			// than the state recorded now. That message carried the whole
			// state (a script's, or a deletion), or asked for another read
			// (another client's write): either way the read adds nothing.
			continue
		}
		m.hub.set(nw, m.node.index, true, value, pttl, 0)
	}
	return keyErrs, nil
}

// readValue makes one key's state of the replies to PTTL, GETRANGE 0
// readMax-1 and STRLEN: its value ("" when there is no key) and PTTL. A
// value longer than readMax is named by its start and its length.
func readValue(pttlReply, rangeReply, lenReply rueidis.RedisResult) (string, time.Duration, error) {
	pttl, err := pttlReply.AsInt64()
	if err != nil {
		return "", 0, err
	}
	// Each reply's own error: IsRedisErr does not look into a joined one.
	value, err := rangeReply.ToString()
	if err != nil {
		return "", 0, err
	}
	n, err := lenReply.AsInt64()
	if err != nil {
		return "", 0, err
	}
	if pttl == -2 {
		return "", 0, nil // no key (GETRANGE and STRLEN say "" and 0 then)
	}
	if n > int64(len(value)) || value == "" {
		// Not distlock's: a long value, or an empty one (which must not
		// read as free).
		value += "\x00" + strconv.FormatInt(n, 10)
	}
	return value, time.Duration(pttl) * time.Millisecond, nil
}

// onMessage handles one message on a watch connection: a script's
// message or a keyspace notification. It runs on rueidis's reader
// goroutine and must not block: it updates state, or asks the session
// goroutine to read the key.
func (m *masterWatch) onMessage(msg rueidis.PubSubMessage) {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	m.handle(msg.Channel, msg.Message)
}

// handle handles one message; while messages are in doubt (see doubt), it
// keeps it for later, in order. h.mu must be held.
func (m *masterWatch) handle(channel, body string) {
	if m.doubt != nil {
		m.doubt = append(m.doubt, rueidis.PubSubMessage{Channel: channel, Message: body})
		if len(m.doubt) > maxDoubt {
			// Too much to keep: settle it as if the master's flags were in
			// place; the reads that follows tell the state.
			m.settleDoubt(false)
		}
		return
	}
	prefix := m.hub.c.cfg.prefix
	if name, ok := strings.CutPrefix(channel, scriptChannelPrefix+prefix); ok {
		m.onScript(name, body)
	} else if name, ok := strings.CutPrefix(channel, m.channel(prefix)); ok {
		m.onKeyspace(name, body)
	}
	if m.doubt != nil && len(m.doubt) == 1 {
		// This message put the one before in doubt: it follows it.
		m.doubt = append(m.doubt, rueidis.PubSubMessage{Channel: channel, Message: body})
	}
}

// maxDoubt bounds the messages kept in doubt on one master.
const maxDoubt = 1024

// onScript handles a script's message: "<op> <ttl> <value>", op being the
// write the script is about to make ("set", "expire" or "del"). It records
// the state at once, or once the write's keyspace event confirms it where
// this master is known to publish that event. h.mu must be held.
func (m *masterWatch) onScript(name, body string) {
	op, rest, _ := strings.Cut(body, " ")
	ttl, value, _ := strings.Cut(rest, " ")
	if op == "head" {
		// leave.lua on master 0: a new first in line. It writes no lock
		// key, so no keyspace event follows it.
		if nw := m.hub.names[name]; nw != nil && m.node.index == 0 && value != "" {
			nw.announceHead(value)
		}
		return
	}
	if m.dropPending() {
		return // in doubt now: handle keeps this message
	}
	nw := m.hub.names[name]
	if nw == nil {
		return
	}
	ms, err := strconv.ParseInt(ttl, 10, 64)
	p := &scriptMsg{nw: nw, value: value, pttl: time.Duration(ms) * time.Millisecond, at: m.hub.c.now(), name: name, body: body}
	switch op {
	case "set": // SET PX on a free key: "new" (rarely enabled), "set", "expire"
		p.want = []string{"new", "set", "expire"}
	case "expire": // PEXPIRE
		p.want = []string{"expire"}
	case "del":
		p.want, p.went, p.value, p.pttl = []string{"del"}, value, "", 0
	}
	if p.want == nil || err != nil || (p.value == "") != (op == "del") || (op != "del" && p.pttl <= 0) || (op == "del" && p.went == "") {
		return // not one of our scripts' messages
	}
	m.pending = p
	if !m.lenient {
		for _, ev := range p.want {
			if m.publishes(ev) {
				// The event will confirm it, or confirmWait gives up.
				if m.confirm == nil {
					m.confirm = time.AfterFunc(confirmWait, m.confirmTimeout)
				} else {
					m.confirm.Reset(confirmWait)
				}
				return
			}
		}
	}
	m.apply(p)
}

// dropPending ends the wait for the events of the last script message. One
// that no event confirmed came from another database (pub/sub channels
// are not per database), or from this one when another program took the
// flags that publish its events away since they were last read. To tell,
// notify-keyspace-events is read again: the message and everything after
// it on this connection are held in doubt meanwhile (doubt), and taken as
// they came when the flags were missing. The flags are read at most once a
// second: within a second of the last read the doubt lasts until the next
// read is due (flags cleared twice within a second must not lose the holds
// between: TestUseWatchDashboardChurn). A message dropped is made up for by
// a read of its key. It reports whether the connection is now in doubt.
// h.mu must be held.
func (m *masterWatch) dropPending() bool {
	p := m.pending
	m.pending = nil
	if p == nil || p.applied {
		return false
	}
	if m.confirm != nil {
		m.confirm.Stop()
	}
	m.doubt = append(m.doubt[:0], rueidis.PubSubMessage{Channel: scriptChannelPrefix + m.hub.c.cfg.prefix + p.name, Message: p.body})
	now := m.hub.c.now()
	wait := time.Duration(max(m.recheckAt-now, 0))
	m.recheckAt = now + int64(wait) + int64(time.Second)
	if m.rechecker != nil {
		m.rechecker.Stop()
	}
	m.rechecker = time.AfterFunc(wait, func() {
		m.mu.Lock()
		m.recheck = true
		m.mu.Unlock()
		m.poke()
	})
	return true
}

// settleDoubt ends the doubt about the messages held since one was left
// unconfirmed: lenient, they are handled again as they came, each taken at
// once (the master was not publishing the events that would confirm
// them); otherwise the first is dropped (another database's) and its key
// read, and the rest handled as usual, matched to the events that followed
// them. h.mu must be held.
func (m *masterWatch) settleDoubt(lenient bool) {
	held := m.doubt
	m.doubt = nil
	if len(held) == 0 {
		return
	}
	if !lenient {
		if name, ok := strings.CutPrefix(held[0].Channel, scriptChannelPrefix+m.hub.c.cfg.prefix); ok && m.hub.names[name] != nil {
			m.markRefresh(name)
		}
		held = held[1:]
	}
	m.lenient = lenient
	for i, msg := range held {
		m.handle(msg.Channel, msg.Message)
		if m.doubt != nil {
			// In doubt again (possible only when not lenient, within a
			// second of a check: it does not happen); keep the rest.
			m.doubt = append(m.doubt, held[i+1:]...)
			break
		}
	}
	m.lenient = false
}

// endSession forgets what one session's messages left unsettled: the
// reads after the next subscribe tell the state. h.mu must be held.
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

// confirmTimeout drops a script message that confirmWait saw no event
// confirm.
func (m *masterWatch) confirmTimeout() {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	if p := m.pending; p != nil && !p.applied && m.doubt == nil && m.hub.c.now()-p.at >= int64(confirmWait) {
		m.dropPending()
	}
}

// apply records the state a script's message announced. h.mu must be held.
func (m *masterWatch) apply(p *scriptMsg) {
	p.applied = true
	p.nw.seq[m.node.index]++
	if p.went != "" {
		// A delete of went: the master held it just before, whatever this
		// Client heard (a message dropped, a read before the set).
		if p.nw.per[m.node.index].value != p.went {
			m.hub.set(p.nw, m.node.index, true, p.went, -1, 0)
		}
		m.hub.set(p.nw, m.node.index, true, "", 0, watch.HowDeleted)
		return
	}
	m.hub.set(p.nw, m.node.index, true, p.value, p.pttl, 0)
}

// onKeyspace handles one keyspace notification. h.mu must be held.
func (m *masterWatch) onKeyspace(name, event string) {
	nw := m.hub.names[name]
	if p := m.pending; p != nil {
		if i := slices.Index(p.want, event); i >= 0 && p.nw == nw {
			// The write the message before it announced. (Events it
			// skips are ones this master does not publish.)
			if p.want = p.want[i+1:]; len(p.want) == 0 {
				m.pending = nil
			}
			if !p.applied {
				m.apply(p)
			}
			return
		}
		// Another command's event: a message still unconfirmed came
		// from another database (or its write failed, or the flags
		// changed); see dropPending.
		if m.dropPending() {
			return // in doubt now: handle keeps this event
		}
	}
	if nw == nil {
		return
	}
	nw.seq[m.node.index]++
	switch event {
	case "del":
		m.hub.set(nw, m.node.index, true, "", 0, watch.HowDeleted)
	case "expired", "evicted":
		m.hub.set(nw, m.node.index, true, "", 0, watch.HowExpired)
	case "rename_from":
		m.hub.set(nw, m.node.index, true, "", 0, watch.HowUnknown)
	default: // set, expire, ... that no script announced: read the key
		m.markRefresh(name)
	}
}
