package distlock

import (
	"time"

	"github.com/distlock/distlock/internal/watch"
)

// masterState is what one master last said about one key, as the hub
// needs it beside the merged state: to tell how a value went when a read
// finds it gone, and to read the key at the holder's expiry.
type masterState struct {
	value   string // "" when free
	expires int64  // on c's monotonic clock; 0 when unknown or free
	timer   *time.Timer
}

// set records what master m says about nw's key (known false: m is
// unreachable), merges it (internal/watch) and emits the events of the
// changes it makes. how says how the value m held before went, when value
// is another or "" (0: set tells from the value's known expiry). h.mu is held.
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
		var typ EventType
		switch c.Kind {
		case watch.Acquired:
			typ = EventAcquired
		case watch.Released:
			typ = EventReleased
		case watch.Expired:
			typ = EventExpired
		}
		ev := holdEvent(nw.req.name, typ, at, c.Masters, c.Value, c.Initial)
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
		h.emit(nw, ev, c.Value)
	}
	// A key gone while no one holds a majority: wake the waiters even
	// without a change of state. A holder that took and dropped the lock
	// between two reads never showed as held, so its release made no
	// event, and the waiters would sleep out their backoff.
	if known && value == "" && nw.state.Started() && nw.state.Free() {
		nw.wake("")
	}
}

// emit sends ev to every watcher of nw, and wakes its waiters when the
// lock became free: value's hold ended. h.mu is held.
func (h *watchHub) emit(nw *nameWatch, ev Event, value string) {
	h.c.watchEvent(ev.Type)
	for w := range nw.watchers {
		w.send(ev)
	}
	if ev.Type != EventAcquired {
		nw.wake(value)
	}
}
