package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/quorum"
)

var statusCommand = &command{
	name:     "status",
	synopsis: "[flags] NAME",
	summary:  "show each master's view of a lock, and the verdict",
	about: `
Reads the lock NAME on every master at once and prints, per master: whether
it answered, whether it holds the lock (and for which holder), the lock
key's remaining TTL, and its fence counter as a fencing token (the counter
shifted left 6 bits, the master's index in the low bits), to compare with
DISTLOCK_TOKEN: the holder's token is at most the largest of them; then
the verdict of the majority, and who holds the lock: each holder's owner
(its --owner or Config.Owner, by default hostname:pid of its process) and
metadata (--metadata, WithMetadata), as stored with its lease. The
holder's own token is not stored with them (it is drawn after). With
--json, one JSON object. It writes nothing: the answer is a snapshot.

Exit status: 0 free; 1 held; 2 cannot tell (fewer than a majority of
masters gave a reading: unreachable, or answering with an error such as
WRONGTYPE; or they disagree); 125 usage.`,
	run: statusMain,
}

// statusJSON is what --json prints.
type statusJSON struct {
	Name     string         `json:"name"`
	State    string         `json:"state"`              // free, held or unknown
	Agree    int            `json:"agree"`              // masters agreeing with state
	Quorum   int            `json:"quorum"`             // masters needed for a verdict
	TTLMs    int64          `json:"ttl_ms"`             // held: until a majority's keys expire, unless renewed; -1: no expiry
	Owner    string         `json:"owner,omitempty"`    // held: the holder's owner
	Metadata string         `json:"metadata,omitempty"` // held: the holder's metadata
	Masters  []masterStatus `json:"masters"`
	Error    string         `json:"error,omitempty"`   // no master could be reached (each master's error is in masters)
	Warning  string         `json:"warning,omitempty"` // no acquire can win while the fence counters stay unreadable (fenceWarning)
}

type masterStatus struct {
	Addr      string `json:"addr"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Held      bool   `json:"held"`
	Holder    string `json:"holder,omitempty"`   // the lock key's value: the holding lease's random value, then its owner and metadata
	Owner     string `json:"owner,omitempty"`    // the holding lease's owner
	Metadata  string `json:"metadata,omitempty"` // the holding lease's metadata
	TTLMs     int64  `json:"ttl_ms"`
	Fence     int64  `json:"fence"`
	FenceErr  string `json:"fence_error,omitempty"` // the counter could not be read
	Token     uint64 `json:"token"`                 // fence as a fencing token: fence<<6 | the master's index
}

func statusMain(c *command, args []string, stdout, stderr io.Writer) int {
	f := newFlags(c)
	var asJSON bool
	var timeout time.Duration
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.durationVar(&timeout, "timeout", 5*time.Second, "give up on masters that have not answered after this long (a `duration`, or seconds)")
	if status, done := f.parse(args, stdout, stderr); done {
		return status
	}
	switch rest := f.Args(); {
	case len(rest) == 0:
		return f.fail(stderr, usagef("missing lock NAME"))
	case len(rest) > 1:
		return f.fail(stderr, extraArgs(rest, "one lock NAME at a time", ""))
	}
	name := f.Arg(0)
	if err := f.checkName(name); err != nil {
		return f.fail(stderr, err)
	}
	if err := positive("timeout", timeout); err != nil {
		return f.fail(stderr, err)
	}
	cfg, err := f.config()
	if err != nil {
		return f.fail(stderr, err)
	}
	// Connecting is part of the read: masters that do not answer within
	// --timeout are reported as such.
	cfg.DialTimeout = timeout
	client, err := f.connect(cfg)
	if errors.Is(err, distlock.ErrNoQuorum) {
		// No master answered at all: that too is "cannot tell".
		if asJSON {
			out := statusJSON{Name: name, State: distlock.StateUnknown.String(), Masters: []masterStatus{}, Error: err.Error()}
			var de *distlock.DialError
			if errors.As(err, &de) {
				out.Quorum = quorum.Majority(len(de.Errs))
				for _, ne := range de.Errs {
					out.Masters = append(out.Masters, masterStatus{Addr: ne.Addr, Reachable: refused(ne.Err), Error: ne.Err.Error()})
				}
			}
			writeJSON(stdout, out)
		}
		fmt.Fprintf(stderr, "distlock status: %s\n", errText(err))
		return exitUnknown
	}
	if err != nil {
		return f.fail(stderr, err)
	}
	defer closeSoon(client)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
	defer cancel()
	st, err := client.Status(ctx, name)
	if err != nil {
		fmt.Fprintf(stderr, "distlock status: %s\n", errText(err))
		return exitUnknown
	}

	if asJSON {
		out := statusJSON{Name: st.Name, State: st.State.String(), Agree: st.Agree, Quorum: st.Quorum, TTLMs: ttlMs(st.TTL), Owner: st.Owner, Metadata: st.Metadata, Warning: statusWarning(st)}
		for i, m := range st.Masters {
			ms := masterStatus{Addr: m.Addr, Reachable: m.Err == nil || refused(m.Err), Held: m.Held, Holder: m.Value, Owner: m.Owner, Metadata: m.Metadata, TTLMs: ttlMs(m.TTL), Fence: m.Fence, Token: fenceToken(m.Fence, i)}
			if m.FenceErr != nil {
				ms.FenceErr = m.FenceErr.Error()
			}
			if m.Err != nil {
				ms.Error = masterErrText(m.Err)
			}
			out.Masters = append(out.Masters, ms)
		}
		writeJSON(stdout, out)
	} else {
		printStatus(stdout, st)
	}
	switch st.State {
	case distlock.StateFree:
		return exitOK
	case distlock.StateHeld:
		return exitHeld
	}
	return exitUnknown
}

// writeJSON writes v to w as --json prints it: indented, one object.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// fenceWarning says, when it is so, that no acquire of st's lock can win
// whatever its state: a master whose fence counter is unreadable (another
// program's key there, WRONGTYPE) refuses every acquire in that hash
// slot, and too few masters are left to make a majority. "" otherwise.
// The verdict still goes by the lock key (a free lock is free), but an
// operator who reads "free" and then sees run exit 123 is told why here.
func fenceWarning(st distlock.Status) string {
	bad, usable := 0, 0
	for _, m := range st.Masters {
		switch {
		case m.Err != nil:
		case m.FenceErr != nil:
			bad++
		default:
			usable++
		}
	}
	if bad == 0 || usable >= st.Quorum {
		return ""
	}
	return fmt.Sprintf("no acquire can win: the fence counter is unreadable on %d of %d masters, and a master refuses every acquire while its counter is; %d left, %d needed", bad, len(st.Masters), usable, st.Quorum)
}

// statusWarning is fenceWarning as status gives it, saying where the
// masters concerned show.
func statusWarning(st distlock.Status) string {
	if w := fenceWarning(st); w != "" {
		return w + " (the TOKEN column and --json's fence_error name them)"
	}
	return ""
}

// masterErrText is a master's error as status shows it beside the
// master's address: without the address again (a *distlock.NodeError
// starts with it), as --json gives it when no master could be reached.
func masterErrText(err error) string {
	var ne *distlock.NodeError
	if errors.As(err, &ne) && ne.Err != nil {
		return ne.Err.Error()
	}
	return err.Error()
}

// tokenCell is the TOKEN column for master i: its counter as a token, or
// "unreadable" when another program left something else there (the
// value itself is not printed: --json has the error).
func tokenCell(m distlock.MasterStatus, i int) string {
	if m.FenceErr != nil {
		return "unreadable"
	}
	return strconv.FormatUint(fenceToken(m.Fence, i), 10)
}

// fenceToken returns the token a lease granted by master i with fence
// counter fence would get, as DISTLOCK_TOKEN shows it: the counter
// shifted left by 6 bits, the master's index in the low bits (see
// distlock.MasterStatus.Fence). 0 before the first lease.
func fenceToken(fence int64, i int) uint64 {
	if fence <= 0 {
		return 0
	}
	return uint64(fence)<<6 | uint64(i)
}

// keyTTL renders a lock key's remaining TTL; a key without expiry (which
// distlock never writes) has none.
func keyTTL(ttl time.Duration) string {
	if ttl < 0 {
		return "none"
	}
	return ttl.String()
}

// ttlMs is ttl in milliseconds for --json, -1 for a key without expiry
// (a negative TTL in Status), as Redis's PTTL says it.
func ttlMs(ttl time.Duration) int64 {
	if ttl < 0 {
		return -1
	}
	return ttl.Milliseconds()
}

// printStatus prints st as a verdict line, a table, and a line per
// holder the table names:
//
//	lock "jobs/nightly": held (3 of 3 masters agree, 2 needed); a majority keeps it 9.871s unless renewed
//	MASTER                      STATE  HOLDER    TTL     TOKEN
//	redis://127.0.0.1:6379/0    held   3f2a9c1b  9.871s  768
//	holder 3f2a9c1b: owner "web-1:4242", metadata "job 42"
func printStatus(w io.Writer, st distlock.Status) {
	n := len(st.Masters)
	switch st.State {
	case distlock.StateHeld:
		if st.TTL >= 0 {
			fmt.Fprintf(w, "lock %q: held (%d of %d masters agree, %d needed); a majority keeps it %v unless renewed\n", st.Name, st.Agree, n, st.Quorum, st.TTL)
		} else {
			fmt.Fprintf(w, "lock %q: held (%d of %d masters agree, %d needed); no expiry: not a distlock lease, or set by another program\n", st.Name, st.Agree, n, st.Quorum)
		}
	case distlock.StateFree:
		fmt.Fprintf(w, "lock %q: free (%d of %d masters agree, %d needed)\n", st.Name, st.Agree, n, st.Quorum)
	default:
		// A master that answered with an error (WRONGTYPE, NOPERM) gave
		// no reading: too few readings is not a disagreement.
		readings, errs := 0, 0
		for _, m := range st.Masters {
			switch {
			case m.Err == nil:
				readings++
			case refused(m.Err):
				errs++
			}
		}
		why := "the masters disagree"
		switch {
		case readings < st.Quorum && errs > 0:
			why = fmt.Sprintf("%d of %d masters answered with an error, %d with a reading", errs, n, readings)
			if silent := n - errs - readings; silent > 0 {
				why += fmt.Sprintf(", %d not at all", silent)
			}
		case readings < st.Quorum:
			why = fmt.Sprintf("%d of %d masters answered", readings, n)
		}
		fmt.Fprintf(w, "lock %q: cannot tell: %s; %d needed to agree (at most %d do)\n", st.Name, why, st.Quorum, st.Agree)
	}
	if warn := statusWarning(st); warn != "" {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tSTATE\tHOLDER\tTTL\tTOKEN")
	for i, m := range st.Masters {
		switch {
		case m.Err != nil && refused(m.Err):
			fmt.Fprintf(tw, "%s\terror\t-\t-\t-\t%s\n", m.Addr, masterErrText(m.Err))
		case m.Err != nil:
			fmt.Fprintf(tw, "%s\tunreachable\t-\t-\t-\t%s\n", m.Addr, masterErrText(m.Err))
		case m.Held:
			fmt.Fprintf(tw, "%s\theld\t%s\t%s\t%s\n", m.Addr, holderID(m.Value), keyTTL(m.TTL), tokenCell(m, i))
		default:
			fmt.Fprintf(tw, "%s\tfree\t-\t-\t%s\n", m.Addr, tokenCell(m, i))
		}
	}
	tw.Flush()
	// Who each holder is, once per value held, in the masters' order.
	seen := make(map[string]bool)
	for _, m := range st.Masters {
		if m.Err != nil || !m.Held || seen[m.Value] {
			continue
		}
		seen[m.Value] = true
		fmt.Fprintf(w, "holder %s: %s\n", holderID(m.Value), describeHolder(m.Owner, m.Metadata))
	}
}

// holderID is how the status table names a lock key's value: its first 8
// bytes (of the lease's random part). A value another program wrote may
// hold anything there: every byte that is not printable ASCII other than
// a space is shown as \xNN, so a table cell is one word with no escape
// sequence for the terminal, no newline and no half of a UTF-8 character.
func holderID(value string) string {
	if len(value) > 8 {
		value = value[:8]
	}
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c > ' ' && c < 0x7f && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

// describeHolder says who a holder is, from the owner and metadata stored
// with its lease.
func describeHolder(owner, metadata string) string {
	if owner == "" && metadata == "" {
		return "no owner stored (a distlock from before owners, or another program's value)"
	}
	s := fmt.Sprintf("owner %q", owner)
	if metadata != "" {
		s += fmt.Sprintf(", metadata %q", metadata)
	}
	return s
}
