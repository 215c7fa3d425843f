package distlock

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/watch"
)

// confirmWait is how long a script message waits for the keyspace event
// that confirms it. The event comes right after it on the same connection,
// so one missing after that long was not published: another program
// changed notify-keyspace-events (or the message came from another
// database). The message is then dropped, the key read instead, and the
// setting read again.
const confirmWait = 100 * time.Millisecond

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
// keeps it for later, in order. h.mu is held.
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
	if len(m.doubt) == 1 {
		// This message put the one before in doubt: it follows it.
		m.doubt = append(m.doubt, rueidis.PubSubMessage{Channel: channel, Message: body})
	}
}

// maxDoubt bounds the messages kept in doubt on one master.
const maxDoubt = 1024

// onScript handles a script's message: "<op> <ttl> <value>", op being the
// write the script is about to make ("set", "expire" or "del"). It records
// the state at once, or once the write's keyspace event confirms it where
// this master is known to publish that event. h.mu is held.
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
// h.mu is held.
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
// them. h.mu is held.
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

// confirmTimeout drops a script message that confirmWait saw no event
// confirm.
func (m *masterWatch) confirmTimeout() {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	if p := m.pending; p != nil && !p.applied && m.doubt == nil && m.hub.c.now()-p.at >= int64(confirmWait) {
		m.dropPending()
	}
}

// apply records the state a script's message announced. h.mu is held.
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

// onKeyspace handles one keyspace notification. h.mu is held.
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
