package distlock

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
)

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
	cmds := []rueidis.Completed{dc.B().ConfigGet().Parameter("notify-keyspace-events").Build()}
	if off, ok := m.hub.c.untrack(m.node.index, dc.B()); ok {
		// The session's connection tracks no keys (lease_events.go,
		// untrack). Its answer is not read: were it refused, the
		// messages would come twice, which costs reads, never a change
		// missed.
		cmds = append([]rueidis.Completed{off}, cmds...)
	}
	rs := dc.DoMulti(ctx, cmds...)
	cur, err := rs[len(rs)-1].AsStrMap()
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
// event ev ("new", "set", "expire" or "del") on keyspace channels.
// h.mu is held.
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
	return &notifyConfigError{err: err}
}

// notifyConfigError is a master's refusal of CONFIG, explained: it is
// ErrNotifyConfig and wraps the master's answer.
type notifyConfigError struct{ err error }

func (e *notifyConfigError) Error() string {
	return fmt.Sprintf("cannot enable keyspace notifications (CONFIG GET/SET notify-keyspace-events: %v): set notify-keyspace-events to include %q on this master (in redis.conf or your provider's settings), then set Config.SkipNotifyConfig", e.err, notifyFlags)
}

func (e *notifyConfigError) Unwrap() []error { return []error{ErrNotifyConfig, e.err} }
