package distlock

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// readMax is how much of a key's value a read asks for. distlock's values
// are at most maxValueLen bytes (the random part, the owner and the
// metadata: owner.go); a longer one is another program's, told apart by
// its first readMax bytes and its length. A whole value of any size would
// not do: one over the master's pub/sub output buffer limit (client-output-
// buffer-limit pubsub, 32 MB by default) makes the master close the
// connection, and with it every watch of the Client on that master.
const readMax = 4096

// Every value distlock writes is read whole.
var _ [readMax - maxValueLen]struct{}

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
	marks := make([]uint64, 0, len(names))
	for _, name := range names {
		if nw := m.hub.names[name]; nw != nil {
			keys = append(keys, nw.req.key)
			waits = append(waits, nw.req.waitKey)
			live = append(live, nw)
			seqs = append(seqs, nw.seq[m.node.index])
			marks = append(marks, nw.marks)
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
			if head, err := r[3].AsStrSlice(); err == nil {
				nw.lineRead(head, marks[i])
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
