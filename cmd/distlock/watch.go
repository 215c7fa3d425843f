package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/quorum"
)

var watchCommand = &command{
	name:     "watch",
	synopsis: "[flags] NAME...",
	summary:  "print the events of locks until interrupted",
	about: `
Prints each change of the locks' states, as a majority of masters sees it,
one line per event: time, name (quoted when it holds a space, a quote or
a character that does not print), event (acquired, released, expired), how
many masters agree, and the holder's owner and metadata (of the new holder
for acquired, of the one whose hold ended otherwise; each when stored).
With --json, one JSON object per line:
  {"time":"...","name":"...","type":"acquired","masters":3,"of":3,"initial":false,"missed":0,"unseen":false,"owner":"web-1:4242","metadata":"job 42"}
"initial" marks a lock that was already held when watching began; "missed"
counts events dropped because the output did not keep up; "unseen" (a
word at the end of the line without --json) marks the first event after
a connection to a master was lost or made again: what that master said
meanwhile was lost, so a hold may have come and gone with no event; "owner" and
"metadata" are left out when the holder stored none. The holder's token is
not known to a watcher: it is drawn after the lease's value is stored. While fewer than
a majority of masters answer (counted every second), events may come late
or not at all: watch says so on stderr ("degraded", then "recovered"), and
with --json as a line {"time":"...","type":"degraded","masters":1,"of":3,"needed":2}.

Runs until SIGINT, SIGTERM, SIGHUP or SIGQUIT (or --timeout), then exits 0. Says on stderr
when it is watching. Exit status: 0 stopped; 123 masters unreachable or
refusing keyspace notifications, or --timeout ran out while connecting to
them; 125 usage.`,
	run: watchMain,
}

// watchEvent is one event as --json prints it.
type watchEvent struct {
	Time     time.Time `json:"time"`
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	Masters  int       `json:"masters"` // masters agreeing on the new state
	Of       int       `json:"of"`      // masters configured
	Initial  bool      `json:"initial"`
	Missed   int       `json:"missed"`
	Unseen   bool      `json:"unseen"`             // a master's messages may have been lost before it (Event.Unseen)
	Owner    string    `json:"owner,omitempty"`    // the holder's, as stored with its lease
	Metadata string    `json:"metadata,omitempty"` // the holder's, as stored with its lease
}

// watchOptions is what the watch command line says.
type watchOptions struct {
	names      []string
	asJSON     bool
	timeout    time.Duration
	skipNotify bool
}

func watchMain(c *command, args []string, stdout, stderr io.Writer) int {
	f := newFlags(c)
	var o watchOptions
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object per event")
	f.durationVar(&o.timeout, "timeout", 0, "stop after this long (a `duration`, or seconds); 0: until interrupted")
	f.BoolVar(&o.skipNotify, "skip-notify-config", false, "do not run CONFIG SET notify-keyspace-events on the masters (Config.SkipNotifyConfig),\nfor servers that refuse CONFIG: set it to include \"Kgx\" on them yourself")
	if status, done := f.parse(args, stdout, stderr); done {
		return status
	}
	cfg, err := o.check(f)
	if err != nil {
		return f.fail(stderr, err)
	}

	sigCtx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	ctx := sigCtx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	total := len(cfg.Nodes)
	if total == 0 {
		total = 1 // the default node
	}
	// New waits up to its dial timeout for masters that do not answer:
	// a signal or --timeout meanwhile ends the wait
	// (TestWatchStopsWhileConnecting).
	d := f.connectAsync(cfg)
	var client *distlock.Client
	select {
	case m := <-d.done:
		if m.err != nil {
			return f.fail(stderr, m.err)
		}
		client = m.c
	case <-ctx.Done():
		d.abandon()
		if sigCtx.Err() != nil {
			fmt.Fprintf(stderr, "distlock watch: interrupted while connecting to the masters\n")
			return exitOK
		}
		fmt.Fprintf(stderr, "distlock watch: --timeout %v ran out while connecting to the masters (fewer than %d of %d answered)\n", o.timeout, quorum.Majority(total), total)
		return exitUnreachable
	}
	defer closeSoon(client)

	var chans []<-chan distlock.Event
	for _, name := range o.names {
		ch, err := client.Watch(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK // interrupted while subscribing
			}
			if errors.Is(err, distlock.ErrNotifyConfig) {
				fmt.Fprintf(stderr, "distlock watch: %s refuse CONFIG, so keyspace notifications cannot be enabled: set notify-keyspace-events to include \"Kgx\" on them (in redis.conf or your provider's settings), then pass --skip-notify-config\n", refusingMasters(err))
				return exitUnreachable
			}
			return f.fail(stderr, err)
		}
		chans = append(chans, ch)
	}
	shown := make([]string, len(o.names))
	for i, name := range o.names {
		shown[i] = eventName(name)
	}
	fmt.Fprintf(stderr, "distlock watch: watching %s on %d masters\n", strings.Join(shown, ", "), total)

	// One goroutine per name; each channel closes when ctx ends.
	out := &watchOutput{stdout: stdout, stderr: stderr, enc: json.NewEncoder(stdout), asJSON: o.asJSON, total: total}
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Go(func() { out.events(ch) })
	}
	wg.Go(func() { out.reach(ctx, client, o.names[0]) })
	wg.Wait()
	return exitOK
}

// check validates the command line and returns the Client configuration.
func (o *watchOptions) check(f *flags) (distlock.Config, error) {
	o.names = f.Args()
	if len(o.names) == 0 {
		return distlock.Config{}, usagef("missing lock NAME")
	}
	for _, name := range o.names {
		if strings.HasPrefix(name, "-") {
			// A flag after the NAMEs is not parsed as one: refuse it
			// rather than watch a lock named after it
			// (TestUseWatchFlagAfterName).
			return distlock.Config{}, usagef("%q after the lock NAMEs: flags go before them", shownArg(name))
		}
		if err := f.checkName(name); err != nil {
			return distlock.Config{}, err
		}
	}
	if err := notNegative("timeout", o.timeout); err != nil {
		return distlock.Config{}, err
	}
	cfg, err := f.config()
	if err != nil {
		return distlock.Config{}, err
	}
	cfg.SkipNotifyConfig = o.skipNotify
	return cfg, nil
}

// watchOutput writes what watch reports: the events on stdout, and
// whether a majority of masters answers on stderr (or stdout, with
// --json).
type watchOutput struct {
	mu     sync.Mutex // guards stdout
	stdout io.Writer
	stderr io.Writer
	enc    *json.Encoder // on stdout
	asJSON bool
	total  int // masters configured
}

// events prints each event of ch until ch closes.
func (w *watchOutput) events(ch <-chan distlock.Event) {
	for ev := range ch {
		w.mu.Lock()
		if w.asJSON {
			w.enc.Encode(watchEvent{Time: ev.Time, Name: ev.Name, Type: ev.Type.String(), Masters: ev.Masters, Of: w.total, Initial: ev.Initial, Missed: ev.Missed, Unseen: ev.Unseen, Owner: ev.Owner, Metadata: ev.Metadata})
		} else {
			fmt.Fprintln(w.stdout, formatEvent(ev, w.total))
		}
		w.mu.Unlock()
	}
}

// reach says whether a majority of masters answers, when it changes,
// until ctx ends: without one, events may come late or not at all.
func (w *watchOutput) reach(ctx context.Context, client *distlock.Client, name string) {
	degraded := false
	pollReach(ctx, client, name, 0, reachPoll, func(r reach) {
		if r.short() == degraded {
			return
		}
		degraded = r.short()
		typ := "recovered"
		if degraded {
			typ = "degraded"
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.asJSON {
			w.enc.Encode(reachEvent{Time: time.Now(), Type: typ, Masters: r.up, Of: r.total, Needed: r.quorum})
		} else if degraded {
			fmt.Fprintf(w.stderr, "distlock watch: degraded: %v; events may come late or not at all\n", r)
		} else {
			fmt.Fprintf(w.stderr, "distlock watch: recovered: %v\n", r)
		}
	})
}

// reachPoll is how often watch counts the masters that answer.
const reachPoll = time.Second

// reachEvent is what --json prints when the masters that answer fall
// below a majority (degraded) or reach one again (recovered).
type reachEvent struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`    // degraded or recovered
	Masters int       `json:"masters"` // masters that answer
	Of      int       `json:"of"`      // masters configured
	Needed  int       `json:"needed"`  // a majority
}

// formatEvent renders ev as one line:
//
//	2026-11-25T22:40:01.123+00:00 jobs/nightly acquired masters=3/3 owner="web-1:4242" metadata="job 42"
//
// A name with a space, a quote or a character that does not print is
// quoted (as Go quotes it): a line break in a name would otherwise start
// what reads as an event of its own.
func formatEvent(ev distlock.Event, total int) string {
	line := fmt.Sprintf("%s %s %s masters=%d/%d", ev.Time.Format("2006-01-02T15:04:05.000Z07:00"), eventName(ev.Name), ev.Type, ev.Masters, total)
	if ev.Initial {
		line += " initial"
	}
	if ev.Missed > 0 {
		line += fmt.Sprintf(" missed=%d", ev.Missed)
	}
	if ev.Unseen {
		line += " unseen"
	}
	if ev.Owner != "" {
		line += fmt.Sprintf(" owner=%q", ev.Owner)
	}
	if ev.Metadata != "" {
		line += fmt.Sprintf(" metadata=%q", ev.Metadata)
	}
	return line
}

// eventName is name as formatEvent prints it: as it is, or quoted when it
// holds a space, a '"' or a character that does not print.
func eventName(name string) string {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return strconv.Quote(name)
	}
	return name
}

// refusingMasters names the masters whose error in err (a Watch's) is
// distlock.ErrNotifyConfig, each with its address: "masters 0 (host:port)
// and 2 (host:port)", or "the masters" when err says not which.
func refusingMasters(err error) string {
	var qe *distlock.QuorumError
	if !errors.As(err, &qe) {
		return "the masters"
	}
	var which []string
	for i, e := range qe.Errs {
		if e != nil && errors.Is(e, distlock.ErrNotifyConfig) {
			m := strconv.Itoa(i)
			var ne *distlock.NodeError
			if errors.As(e, &ne) {
				m += " (" + ne.Addr + ")"
			}
			which = append(which, m)
		}
	}
	switch len(which) {
	case 0:
		return "the masters"
	case 1:
		return "master " + which[0]
	}
	return "masters " + strings.Join(which[:len(which)-1], ", ") + " and " + which[len(which)-1]
}
