package distlock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/script"
)

// node is one master. Its rueidis client is created when the master first
// answers: a master that is down when New runs is dialled again in the
// background, so that a Client starts and locks with a minority down.
type node struct {
	index int
	addr  string // for errors: no credentials
	opt   rueidis.ClientOption
	log   *slog.Logger

	// down is set while the master fails to answer; it only steers
	// logging (node.observe), never a decision.
	down atomic.Bool

	client  atomic.Pointer[rueidis.Client] // nil until the first dial succeeds
	dialErr atomic.Pointer[error]          // the last dial's error while client is nil
}

// errNotConnected is what a master that was never reached answers.
var errNotConnected = errors.New("not connected yet")

// get returns the master's client, or why there is none.
func (n *node) get() (rueidis.Client, error) {
	if c := n.client.Load(); c != nil {
		return *c, nil
	}
	if err := n.dialErr.Load(); err != nil {
		// A dial that timed out ran out of its own time, not the caller's.
		return nil, fmt.Errorf("%w (last dial: %w)", errNotConnected, ownTimeout(*err, n.opt.Dialer.Timeout))
	}
	return nil, errNotConnected
}

// dial connects to the master, and keeps trying in the background until it
// succeeds or stop closes. It reports the first attempt's outcome on first
// (nil on success), then returns when connected or stopped.
func (n *node) dial(stop <-chan struct{}, first chan<- error) {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		c, err := rueidis.NewClient(n.opt)
		if err == nil {
			// Load the acquire script now: it is sent as EVALSHA alone
			// (see internal/script), and a fresh master would refuse the
			// first acquire.
			ctx, cancel := context.WithTimeout(context.Background(), n.opt.Dialer.Timeout)
			script.Acquire.Load(ctx, c)
			cancel()
			select {
			case <-stop:
				// Close ran while we dialled: nobody will close this client.
				c.Close()
			default:
				n.client.Store(&c)
			}
			if attempt == 0 {
				first <- nil
			} else if n.down.CompareAndSwap(true, false) {
				n.log.Info("distlock: master answering again", "master", n.index, "address", n.addr)
			}
			return
		}
		n.dialErr.Store(&err)
		if attempt == 0 {
			n.down.Store(true)
			n.log.Warn("distlock: master not answering; dialling it again in the background", "master", n.index, "address", n.addr, "error", err.Error())
			first <- err
		}
		t := time.NewTimer(delay)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
