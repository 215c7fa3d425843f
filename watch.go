package distlock

import (
	"context"
	"strconv"
	"time"
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
// that waiter alone: see acquire.go), and the key's
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
//
// The code: this file, the public API; watch_hub.go, the names watched,
// their watchers and waiting Acquires; watch_merge.go, each master's
// reports merged (internal/watch) into events; watch_conn.go, a master's
// connection and its session; watch_read.go, its reads of the keys;
// watch_config.go, notify-keyspace-events; watch_events.go, the scripts'
// messages and the keyspace events, confirmed or held in doubt.

// EventType says what changed.
type EventType int

const (
	// EventAcquired: a value (a lease's) was reported held by a majority
	// of masters. The masters' reports count cumulatively: each master
	// must have held the value at some point, within a short window of
	// the others as this Client heard them, not all at one instant.
	EventAcquired EventType = iota + 1
	// EventReleased: the hold of the last EventAcquired ended, and a
	// majority of masters reported its value gone before its expiry: its
	// holder's release, another program's DEL, or another value written
	// over it (TestWatchOverwriteByAnotherProgram); or were found without
	// it before its expiry when read again after their connection was
	// lost.
	EventReleased
	// EventExpired: the hold of the last EventAcquired ended otherwise:
	// its keys expired (a holder that died, a lease lost, a release that
	// reached too few masters) on so many masters that no majority
	// reported it gone before then; a new holder may have taken the lock
	// since.
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
	// Owner and Metadata say whose hold this is: the new holder's
	// (EventAcquired), or the one whose hold ended (EventReleased,
	// EventExpired). They are the holder's Config.Owner (by default
	// "hostname:pid") and the metadata its Acquire gave (WithMetadata),
	// as stored with its value; "" for a value that is not a distlock
	// lease's, or from a distlock that stored no owner. The holder's
	// fencing token is not known here: it is drawn after the value is
	// stored.
	Owner    string
	Metadata string
	// Initial marks the first event of a Watch, when the lock was already
	// held as Watch subscribed: a state found, not a change seen.
	Initial bool
	// Missed counts the events dropped since the last event that carried
	// a count, because the receiver did not keep up (see Client.Watch).
	// The dropped ones were the oldest waiting: they came before the
	// events received since, so a released may arrive whose acquired was
	// dropped. After Missed, read Status for the state.
	Missed int
	// Unseen is set on the first event after this Client's watch
	// connection to a master was lost or made again: what that master
	// published meanwhile was lost, so holds that needed it may have come
	// and gone with no event, and this event may be told from reads
	// rather than seen (see Client.Watch).
	Unseen bool
}

// holdEvent is the event of a hold of value on name, seen by masters
// masters at at: its Owner and Metadata are read from value.
func holdEvent(name string, typ EventType, at time.Time, masters int, value string, initial bool) Event {
	ev := Event{Name: name, Type: typ, Time: at, Masters: masters, Initial: initial}
	ev.Owner, ev.Metadata, _ = parseValue(value)
	return ev
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
//     takes the next lease's value on its keys (see Client.Acquire):
//     Watch sees one lease released and the next acquired
//     (TestWatchLocalHandoffEvents).
//
// What can be coalesced: while this Client's watch connection to a master
// is down, what that master publishes is lost. A hold that needed that
// master (held on a bare majority including it) can come and go with no
// event, and a hold's end seen only as a key found gone when the master is
// read again (after it reconnects) is told as released if found gone
// before its expiry. The first event after a connection was lost or made
// again has Unseen set. A receiver that falls behind never slows the
// Client: once WatchBuffer events are waiting, the oldest is dropped for
// each new one, and the new one counts the dropped ones in Missed (events
// still arrive in order). Events are hints about the lock's state; only holding a Lease
// means holding the lock.
//
// A name whose key cannot be read as a lock (another type: WRONGTYPE)
// fails its Watch where a majority of masters say so; it costs no other
// name anything. A key of another program's with a value longer than 4 KiB
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
	missed      int  // events dropped, for the next event sent
	unseen      bool // the next event gets Unseen
	closed      bool
	initialized bool // an event has been sent: no Initial one any more
}

// send delivers ev without blocking: a full channel loses its oldest
// event, and ev counts it in Missed. h.mu is held: the caller is the only
// sender. The count goes on ev, not on the event just after the dropped
// one: that one is already in the channel, and taking the queue out to
// mark it, while the receiver reads, would deliver events out of order
// (TestAdv20WatchSendKeepsOrder).
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
