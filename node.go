package distlock

import (
	"context"
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
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

	// untracked, if not nil, is told that the master refused key
	// tracking (lease_events.go): it sends no key-change messages.
	untracked func()

	// down is set while the master fails to answer; it only steers
	// logging (node.observe), never a decision.
	down atomic.Bool

	// The master's last error reply, for Status and the Logger; never a
	// decision either.
	//
	// Lock order (docs/design.md, "Locks"): Lease.extendMu → Lease.mu →
	// reaper.mu → Client.mu; Lease.mu → renewer.mu, localQueue.mu, keyEvents.mu;
	// watchHub.mu → masterWatch.mu; node.faultMu alone.
	faultMu  sync.Mutex // guards the fields below
	fault    error      // the last error reply (NOPERM, OOM, a script's error)
	faultAt  time.Time
	warned   string    // the text of the last error reply logged
	warnedAt time.Time // and when
	noLoad   error     // why the master refused to load the acquire script

	client  atomic.Pointer[rueidis.Client] // nil until the first dial succeeds
	dialErr atomic.Pointer[error]          // the last dial's error while client is nil

	// claim, when set, is told the server's run_id at the first dial
	// that reads it; an error (another master is the same server, found
	// while New waits) fails New (Client.claimServer).
	claim func(runID string) error
}

// load loads the acquire script on c and, on a standalone server, reads
// its run_id in the same round trip (INFO server): two addresses of one
// server (a DNS alias, a proxy) tell apart only by it. The run_id is ""
// where it cannot be read (a Cluster or Sentinel group, an ACL without
// INFO). The error is the load's.
func (n *node) load(ctx context.Context, c rueidis.Client) (runID string, err error) {
	if c.Mode() != rueidis.ClientModeStandalone {
		return "", script.Acquire.Load(ctx, c)
	}
	res := c.DoMulti(ctx, script.Acquire.LoadCmd(c.B()), c.B().Info().Section("server").Build())
	info, err := res[1].ToString()
	switch {
	case err == nil:
		runID = infoField(info, "run_id")
	case isRedisError(err):
		n.log.Warn("distlock: cannot read the master's run_id (INFO server refused: grant +info|server); two masters that are one server under different names go unnoticed", "master", n.index, "address", n.addr, "error", err.Error())
	}
	return runID, res[0].Error()
}

// infoField returns the value of field in an INFO reply, "" when absent.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
	b := redialBackoff(100*time.Millisecond, 5*time.Second)
	opt := n.opt
	for attempt := 0; ; attempt++ {
		c, err := rueidis.NewClient(opt)
		if refusedTracking(opt, err) {
			// No key-change messages from this master: a loss there is
			// found by the renewals (lease_events.go).
			n.log.Warn("distlock: master cannot track keys; leases learn of a loss there from their renewals", "master", n.index, "address", n.addr, "error", err.Error())
			opt = disarm(opt)
			if n.untracked != nil {
				n.untracked()
			}
			c, err = rueidis.NewClient(opt)
		}
		if err == nil {
			// Load the acquire script now: it is sent as EVALSHA alone
			// (see internal/script), and a fresh master would refuse the
			// first acquire.
			// A master that refuses (an ACL without SCRIPT LOAD) will
			// answer every acquire NOSCRIPT: say why now. Any other
			// failure is left to the acquire, which loads it again.
			ctx, cancel := context.WithTimeout(context.Background(), n.opt.Dialer.Timeout)
			runID, err := n.load(ctx, c)
			if isRedisError(err) {
				err = loadError(err)
				n.faultMu.Lock()
				n.noLoad = err
				n.faultMu.Unlock()
				n.refused(err)
			}
			cancel()
			if runID != "" && n.claim != nil {
				if err := n.claim(runID); err != nil {
					// Another master is this server, found while New
					// waits: New fails (claimServer).
					c.Close()
					n.dialErr.Store(&err)
					n.down.Store(true)
					if attempt == 0 {
						first <- err
					}
					return
				}
			}
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
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// redialBackoff returns the wait between attempts to reach a master
// again: initial, doubling after each, up to maxInterval; no jitter, and
// no end (the caller stops when the Client closes).
func redialBackoff(initial, maxInterval time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(maxInterval),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
}

// observe notes the master's answer to a command, or its failure to give
// one (err), and logs when the master stops or starts answering. An error
// reply from Redis is an answer, but the master did not do what was asked:
// it is logged too (refused).
func (n *node) observe(err error) {
	if err != nil && !isRedisError(err) && !notReplicated(err) {
		if ne, ok := err.(*NodeError); ok {
			err = ne.Err // the address is logged apart
		}
		if n.down.CompareAndSwap(false, true) {
			n.log.Warn("distlock: master not answering", "master", n.index, "address", n.addr, "error", err.Error())
		}
		return
	}
	if n.down.Load() && n.down.CompareAndSwap(true, false) {
		n.log.Info("distlock: master answering again", "master", n.index, "address", n.addr)
	}
	if err != nil {
		n.refused(err)
	}
}

// refusalLogEvery is how often the Logger is told again of one error reply
// that a master keeps giving.
const refusalLogEvery = time.Minute

// refused records an error reply of the master (a command its ACL denies,
// OOM, READONLY, a failing script) for Status, and logs it: at once when
// it differs from the last one logged, else at most every refusalLogEvery.
// A master that refuses every acquire still answers every read, and the
// locks go on without it, with less fault tolerance than the operator
// counts on: only the Logger and Status can tell.
func (n *node) refused(err error) {
	var ne *NodeError
	if errors.As(err, &ne) {
		err = ne.Err // the address is logged apart
	}
	err = explainRefusal(err)
	now := time.Now()
	n.faultMu.Lock()
	if re, ok := rueidis.IsRedisErr(err); ok && re.IsNoScript() && n.noLoad != nil {
		// An acquire's NOSCRIPT, as the master refused to load the
		// script: the refusal is the news, NOSCRIPT its consequence.
		err = n.noLoad
	}
	msg := err.Error()
	n.fault, n.faultAt = err, now
	warn := msg != n.warned || now.Sub(n.warnedAt) >= refusalLogEvery
	if warn {
		n.warned, n.warnedAt = msg, now
	}
	n.faultMu.Unlock()
	if warn {
		n.log.Warn("distlock: master answers with an error; it counts for no majority while it does", "master", n.index, "address", n.addr, "error", msg)
	}
}

// lastFault returns when the master's last error reply came and the
// reply, or nil.
func (n *node) lastFault() (time.Time, error) {
	n.faultMu.Lock()
	defer n.faultMu.Unlock()
	return n.faultAt, n.fault
}

// loadError is the error of a failed SCRIPT LOAD of the acquire script.
// When the master refused it (an error reply: NOPERM), it says what was
// refused, where the acquire alone would only say NOSCRIPT; any other
// error (no answer in time) is returned as is.
func loadError(err error) error {
	if !isRedisError(err) {
		return err
	}
	return fmt.Errorf("the master refused to load the acquire script (SCRIPT LOAD), so every acquire there fails: %w", err)
}

// Naming the command a script was refused. Redis says which command an
// ACL refused at the top level ("NOPERM this user has no permissions to
// run the 'script|load' command"), but inside a script, before 7.2, only
// where: "ERR The user executing the script can't run this command or
// subcommand script: <sha1>, on @user_script:<line>." The scripts are
// ours: the SHA-1 names the script, the line its command.

//go:embed internal/script/*.lua
var scriptFiles embed.FS

// scriptLines maps the SHA-1 of each script, as sent with EVAL or EVALSHA
// (whole, or without its comment lines as script.NewNoSha sends it), to
// its file name and lines.
var scriptLines = func() map[string]scriptSource {
	m := make(map[string]scriptSource)
	files, _ := scriptFiles.ReadDir("internal/script")
	for _, f := range files {
		b, err := scriptFiles.ReadFile(path.Join("internal/script", f.Name()))
		if err != nil {
			continue
		}
		src := string(b)
		var body strings.Builder // as script.NewNoSha sends it
		for _, line := range strings.Split(src, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
				body.WriteString(line)
				body.WriteByte('\n')
			}
		}
		for _, s := range []string{src, body.String()} {
			sum := sha1.Sum([]byte(s))
			m[hex.EncodeToString(sum[:])] = scriptSource{file: f.Name(), lines: strings.Split(s, "\n")}
		}
	}
	return m
}()

type scriptSource struct {
	file  string
	lines []string
}

var (
	scriptWhere = regexp.MustCompile(`script: ([0-9a-f]{40}), on @user_script:([0-9]+)`)
	scriptCall  = regexp.MustCompile(`redis\.p?call\('([A-Za-z]+)'`)
)

// explainRefusal returns err, or for an ACL's refusal inside one of our
// scripts, an error that says NOPERM and which command, and wraps err.
func explainRefusal(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "NOPERM") || !strings.Contains(msg, "The user executing the script can't") && !strings.Contains(msg, "ACL failure in script") {
		return err
	}
	what := "a command of a distlock script"
	if m := scriptWhere.FindStringSubmatch(msg); m != nil {
		if src, ok := scriptLines[m[1]]; ok {
			line, _ := strconv.Atoi(m[2])
			what = fmt.Sprintf("%s, line %d", src.file, line)
			if line >= 1 && line <= len(src.lines) {
				if c := scriptCall.FindStringSubmatch(src.lines[line-1]); c != nil {
					what = fmt.Sprintf("%s (%s, line %d)", strings.ToUpper(c[1]), src.file, line)
				}
			}
		}
	}
	return fmt.Errorf("NOPERM: the ACL refuses %s: %w", what, err)
}
