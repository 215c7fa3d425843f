package distlock_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// The minimal ACL of docs/security.md, tested: the main flows run under a
// user with exactly those rights, read from docs/security.md so that the
// documented line and the tested one cannot drift apart.

// aclPassword is the password the tests give the documented user.
const aclPassword = "acl-test-password"

// docACL returns the rules of each "ACL SETUSER distlock" line in
// docs/security.md, in order, the password placeholder replaced by
// aclPassword.
func docACL(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "ACL" || f[1] != "SETUSER" || f[2] != "distlock" {
			continue
		}
		rules := f[3:]
		for i, r := range rules {
			if r == ">PASSWORD" {
				rules[i] = ">" + aclPassword
			}
		}
		lines = append(lines, rules)
	}
	if len(lines) == 0 {
		t.Fatal(`docs/security.md has no "ACL SETUSER distlock ..." line`)
	}
	return lines
}

// aclDenials returns the commands, keys and channels the ACL refused user
// on s, from ACL LOG ("reason object" each), and clears the log.
func aclDenials(t *testing.T, s *redistest.Server, user string) []string {
	t.Helper()
	out, err := s.Do("ACL", "LOG")
	if err != nil {
		t.Fatalf("ACL LOG on %s: %v", s.Addr(), err)
	}
	if _, err := s.Do("ACL", "LOG", "RESET"); err != nil {
		t.Fatal(err)
	}
	// Do renders the log's entries, maps of field and value, as one flat
	// list of lines.
	var denials []string
	var reason, object string
	f := strings.Split(out, "\n")
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "reason":
			reason = f[i+1]
		case "object":
			object = f[i+1]
		case "username":
			if f[i+1] == user {
				denials = append(denials, reason+" "+object)
			}
		default:
			continue
		}
		i++
	}
	return denials
}

func TestACLMinimal(t *testing.T) {
	acl := docACL(t)
	servers := redistest.StartN(t, 3, redistest.Options{
		User: "distlock", Password: aclPassword, Rules: acl[0],
		Args: []string{"--notify-keyspace-events", "Kgx"},
	})
	holder := newClient(t, servers, distlock.Config{SkipNotifyConfig: true})
	other := newClient(t, servers, distlock.Config{SkipNotifyConfig: true})
	ctx := ctxTimeout(t, 20*time.Second)
	const name = "acl-job"

	events, err := holder.Watch(ctx, name)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// Acquire, renewed in the background past its TTL.
	l, err := holder.Acquire(ctx, name, distlock.WithTTL(600*time.Millisecond))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Errorf("first event: got %v; want acquired", ev.Type)
	}
	time.Sleep(900 * time.Millisecond)
	if err := l.Err(); err != nil {
		t.Fatalf("lease after 1.5 TTL: Err %v; want nil (renewed)", err)
	}
	if _, err := other.TryAcquire(ctx, name); !errors.Is(err, distlock.ErrLocked) {
		t.Errorf("TryAcquire of the held lock: got %v; want ErrLocked", err)
	}
	if err := l.Extend(ctx, 2*time.Second); err != nil {
		t.Errorf("Extend: %v", err)
	}
	st, err := holder.Status(ctx, name)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != distlock.StateHeld || st.Agree != 3 {
		t.Errorf("Status: got %v agreed by %d (%+v); want held on 3", st.State, st.Agree, st.Masters)
	}

	// A waiter of another Client (master 0's waiting list) and one of the
	// same Client (a local handoff) get the lock in turn.
	remote := acquireLater(t, ctx, other, name)
	local := acquireLater(t, ctx, holder, name)
	time.Sleep(100 * time.Millisecond)
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	var tokens []uint64
	for range 2 {
		select {
		case h := <-remote:
			remote = nil
			if h.err != nil {
				t.Fatalf("waiting Acquire of another Client: %v", h.err)
			}
			tokens = append(tokens, h.l.Token())
			if err := h.l.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
		case h := <-local:
			local = nil
			if h.err != nil {
				t.Fatalf("waiting Acquire of the holder's Client: %v", h.err)
			}
			tokens = append(tokens, h.l.Token())
			if err := h.l.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiters: no lease after 5s")
		}
	}
	if tokens[0] <= l.Token() || tokens[1] <= tokens[0] {
		t.Errorf("tokens %d then %v; want rising", l.Token(), tokens)
	}
	// A fence write-back (fence.lua): masters 1 and 2's counters ahead of
	// master 0's and apart, so that whichever majority answers first, its
	// counters differ: the token comes from the larger, written back to a
	// majority.
	for i, by := range map[int]string{1: "1000", 2: "2000"} {
		fenceKey, err := servers[i].Do("KEYS", "distlock:fence:{*}")
		if err != nil || fenceKey == "" {
			t.Fatalf("fence key on master %d: %q, %v", i, fenceKey, err)
		}
		if _, err := servers[i].Do("INCRBY", fenceKey, by); err != nil {
			t.Fatal(err)
		}
	}
	l, err = other.TryAcquire(ctx, name)
	if err != nil {
		t.Fatalf("TryAcquire with masters 1 and 2's counters ahead: %v", err)
	}
	if l.Token() <= tokens[1]+1000<<6 {
		t.Errorf("token after the counters jumped: %d; want above %d", l.Token(), tokens[1]+1000<<6)
	}
	written := 0
	for _, s := range servers {
		if counter(t, s) >= int64(l.Token()>>6) {
			written++
		}
	}
	if written < 2 {
		t.Errorf("the token's counter %d on %d masters; want written back to a majority", l.Token()>>6, written)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// The watcher saw the lock held and released.
	deadline := time.After(3 * time.Second)
	for released := false; !released; {
		select {
		case ev := <-events:
			released = ev.Type == distlock.EventReleased
		case <-deadline:
			t.Fatal("no released event within 3s")
		}
	}
	for _, s := range servers {
		// With SkipNotifyConfig, Watch reads notify-keyspace-events if it
		// may, and goes on without when refused.
		if d := slices.DeleteFunc(aclDenials(t, s, "distlock"), func(d string) bool { return d == "command config|get" }); len(d) > 0 {
			t.Errorf("ACL refused the documented user on %s: %v", s.Addr(), d)
		}
	}
}

// aclMasters starts n masters whose user "distlock" has the documented
// minimal rights, plus extra rules, and a Client over them whose Logger
// writes to the returned buffer.
func aclMasters(t *testing.T, n int, extra ...string) ([]*redistest.Server, *distlock.Client, *syncBuffer) {
	t.Helper()
	rules := append(docACL(t)[0], extra...)
	servers := redistest.StartN(t, n, redistest.Options{
		User: "distlock", Password: aclPassword, Rules: rules,
		Args: []string{"--notify-keyspace-events", "Kgx"},
	})
	logs := &syncBuffer{}
	c := newClient(t, servers, distlock.Config{SkipNotifyConfig: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return servers, c, logs
}

// logLines returns the lines of logs that contain every one of words.
func logLines(logs *syncBuffer, words ...string) []string {
	var out []string
	for _, line := range strings.Split(logs.String(), "\n") {
		all := line != ""
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// With SCRIPT LOAD denied, the master refuses to load the acquire script
// when first dialled, and every acquire there fails. The Logger says so
// at once, NOPERM and the command, and Status shows it on each master,
// though the master answers Status's reads.
func TestACLScriptLoadDenied(t *testing.T) {
	servers, c, logs := aclMasters(t, 3, "-script|load")
	for i := range servers {
		if got := logLines(logs, "level=WARN", "master="+strconv.Itoa(i), "NOPERM", "script|load", "SCRIPT LOAD"); len(got) != 1 {
			t.Errorf("warnings about master %d refusing SCRIPT LOAD: got %d; want 1; log:\n%s", i, len(got), logs)
		}
	}
	if _, err := c.TryAcquire(t.Context(), "noload"); !errors.Is(err, distlock.ErrNoQuorum) || !strings.Contains(err.Error(), "NOPERM") || !strings.Contains(err.Error(), "script|load") {
		t.Errorf("TryAcquire with SCRIPT LOAD denied everywhere: got %v; want ErrNoQuorum, saying NOPERM and script|load", err)
	}
	st, err := c.Status(t.Context(), "noload")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range st.Masters {
		if m.Err != nil {
			t.Errorf("Status master %d: Err %v; want nil (the reads are allowed)", i, m.Err)
		}
		if m.LastError == nil || !strings.Contains(m.LastError.Error(), "NOPERM") || !strings.Contains(m.LastError.Error(), "script|load") || m.LastErrorAt.IsZero() {
			t.Errorf("Status master %d: LastError %v at %v; want the NOPERM of SCRIPT LOAD, with its time", i, m.LastError, m.LastErrorAt)
		}
	}
}

// With a command the acquire script needs (INCR) denied on master 0 only,
// locks go on over masters 1 and 2, with no fault tolerance left. The
// Logger warns, once for many refusals, saying NOPERM and which command;
// Status shows it as master 0's LastError, and a refused read as Err. No
// message carries the password of the masters' URLs.
func TestACLCommandDeniedOnOneMaster(t *testing.T) {
	servers, c, logs := aclMasters(t, 3)
	if _, err := servers[0].Do("ACL", "SETUSER", "distlock", "-incr"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l, err := c.TryAcquire(t.Context(), "denied")
		if err != nil {
			t.Fatalf("TryAcquire with master 0 refusing INCR: %v; want the lock over masters 1 and 2", err)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Each acquire returns once masters 1 and 2 granted; master 0's refusal
	// may be answered after that, and is logged when it arrives.
	eventually(t, "a warning about master 0 refusing INCR", func() bool {
		return len(logLines(logs, "level=WARN", "master=0", "NOPERM", "INCR (acquire.lua, line ")) > 0
	})
	warned := logLines(logs, "level=WARN", "master=0", "NOPERM", "INCR (acquire.lua, line ")
	if len(warned) != 1 {
		t.Errorf("warnings about master 0 refusing INCR: got %d; want 1 for 3 refusals; log:\n%s", len(warned), logs)
	}
	if got := logLines(logs, "level=WARN", "master=1"); len(got) > 0 {
		t.Errorf("warnings about master 1: got %q; want none", got)
	}

	// A refused read: Status says which, rather than EXECABORT.
	if _, err := servers[1].Do("ACL", "SETUSER", "distlock", "-pttl"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(t.Context(), "denied")
	if err != nil {
		t.Fatal(err)
	}
	m0, m1, m2 := st.Masters[0], st.Masters[1], st.Masters[2]
	if m0.Err != nil || m0.LastError == nil || !strings.Contains(m0.LastError.Error(), "NOPERM") || !strings.Contains(m0.LastError.Error(), "INCR") {
		t.Errorf("Status master 0: Err %v, LastError %v; want no Err and a LastError saying NOPERM and INCR", m0.Err, m0.LastError)
	}
	if m1.Err == nil || !strings.Contains(m1.Err.Error(), "NOPERM") || !strings.Contains(m1.Err.Error(), "pttl") {
		t.Errorf("Status master 1: Err %v; want NOPERM naming pttl", m1.Err)
	}
	if m2.Err != nil || m2.LastError != nil {
		t.Errorf("Status master 2: Err %v, LastError %v; want neither", m2.Err, m2.LastError)
	}
	for i, m := range st.Masters {
		for _, s := range []string{m.Addr, fmt.Sprint(m.Err), fmt.Sprint(m.LastError)} {
			if strings.Contains(s, aclPassword) {
				t.Errorf("Status master %d shows the password: %q", i, s)
			}
		}
	}
	if strings.Contains(logs.String(), aclPassword) {
		t.Errorf("the log shows the password:\n%s", logs)
	}
}

// With docs/security.md's second line (CONFIG GET and SET), Watch sets
// notify-keyspace-events itself, and reports another client's plain DEL.
func TestACLWatchSetsNotifyConfig(t *testing.T) {
	acl := docACL(t)
	if len(acl) < 2 {
		t.Fatal(`docs/security.md has no second "ACL SETUSER distlock ..." line (CONFIG for Watch)`)
	}
	servers := redistest.StartN(t, 3, redistest.Options{
		User: "distlock", Password: aclPassword, Rules: append(acl[0], acl[1]...),
		Args: []string{"--notify-keyspace-events", ""},
	})
	c := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	events, err := c.Watch(ctx, "acl-config")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// Watch returns once a majority is subscribed; the last may follow.
	for _, s := range servers {
		eventually(t, "notify-keyspace-events with K, g and x on "+s.Addr(), func() bool {
			got, _ := s.Do("CONFIG", "GET", "notify-keyspace-events")
			return strings.Contains(got, "K") && strings.ContainsAny(got, "gA") && strings.ContainsAny(got, "xA")
		})
	}
	l, err := c.Acquire(ctx, "acl-config")
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventAcquired {
		t.Errorf("event: got %v; want acquired", ev.Type)
	}
	// Deleted behind the holder's back: only keyspace events tell.
	for _, s := range servers {
		if _, err := s.Do("DEL", "distlock:acl-config"); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, events, 2*time.Second); ev.Type != distlock.EventReleased {
		t.Errorf("event after DEL on every master: got %v; want released", ev.Type)
	}
	l.Release(ctx) // lost by now, or about to be
	for _, s := range servers {
		if d := aclDenials(t, s, "distlock"); len(d) > 0 {
			t.Errorf("ACL refused the documented user on %s: %v", s.Addr(), d)
		}
	}
}

// peerClient returns a rueidis client to s as the documented user: what a
// peer holding distlock's credentials can do.
func peerClient(t *testing.T, s *redistest.Server) rueidis.Client {
	t.Helper()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, Username: "distlock", Password: aclPassword, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	return rc
}

// A peer with the documented rights on the masters can break exclusion and
// tokens: it deletes a holder's keys, and another Client takes the lock
// while the holder still holds it; it lowers the fence counters, and the
// next token is lower than an earlier one. It cannot learn a password:
// CONFIG GET (requirepass, masterauth), the ACL commands, and scripts
// calling them are refused, and so are keys outside the prefix.
func TestACLPeerCanBreakLocksNotLearnPasswords(t *testing.T) {
	const replicaSecret = "replica-link-secret"
	servers := redistest.StartN(t, 3, redistest.Options{
		User: "distlock", Password: aclPassword, Rules: docACL(t)[0],
		Args: []string{"--notify-keyspace-events", "Kgx", "--masterauth", replicaSecret},
	})
	holder := newClient(t, servers, distlock.Config{SkipNotifyConfig: true})
	other := newClient(t, servers, distlock.Config{SkipNotifyConfig: true})
	ctx := ctxTimeout(t, 10*time.Second)
	peers := make([]rueidis.Client, len(servers))
	for i, s := range servers {
		peers[i] = peerClient(t, s)
	}
	var err error

	var first *distlock.Lease
	for range 5 {
		if first, err = holder.Acquire(ctx, "peer"); err != nil {
			t.Fatal(err)
		}
		if err := first.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Release returns at a majority: the third master's release, which
	// also raises its counter (release.lua), may still be on its way, and
	// would undo the peer's reset below where it lands after it.
	for i, s := range servers {
		eventually(t, fmt.Sprintf("the last release on master %d", i), func() bool {
			n, err := s.Do("EXISTS", "distlock:peer")
			return err == nil && n == "0"
		})
	}
	fenceKey, err := servers[0].Do("KEYS", "distlock:fence:{*}")
	if err != nil || fenceKey == "" {
		t.Fatalf("fence key: %q, %v", fenceKey, err)
	}
	for _, p := range peers {
		if err := p.Do(ctx, p.B().Set().Key(fenceKey).Value("0").Build()).Error(); err != nil {
			t.Fatalf("peer's SET of the fence counter: %v; want allowed", err)
		}
	}
	l, err := holder.Acquire(ctx, "peer", distlock.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() >= first.Token() {
		t.Errorf("token after the peer reset the counters: %d; want below the earlier %d (tokens broken)", l.Token(), first.Token())
	}
	for _, p := range peers {
		if err := p.Do(ctx, p.B().Del().Key("distlock:peer").Build()).Error(); err != nil {
			t.Fatalf("peer's DEL of the lock key: %v; want allowed", err)
		}
	}
	second, err := other.TryAcquire(ctx, "peer")
	if err != nil {
		t.Fatalf("TryAcquire after the peer deleted the holder's keys: %v; want the lock (exclusion broken)", err)
	}
	// The holder hears of it from the masters' key-change messages
	// (lease_events.go), long before its next renewal; the window between
	// the deletes and Done closing is what the ACL cannot close.
	select {
	case <-l.Done():
		if !errors.Is(l.Err(), distlock.ErrLeaseLost) {
			t.Errorf("first holder's Err: %v; want ErrLeaseLost", l.Err())
		}
	case <-time.After(time.Second):
		t.Errorf("first holder's Done still open 1s after the peer deleted its keys; want closed by the key events")
	}
	second.Release(ctx)
	l.Release(ctx)

	for _, s := range servers {
		if _, err := s.Do("SET", "app:secret-data", "x"); err != nil {
			t.Fatal(err)
		}
	}
	p := peers[0]
	for _, cmd := range []rueidis.Completed{
		p.B().ConfigGet().Parameter("requirepass").Build(),
		p.B().ConfigGet().Parameter("masterauth").Build(),
		p.B().ConfigGet().Parameter("*").Build(),
		p.B().AclList().Build(),
		p.B().AclGetuser().Username("distlock").Build(),
		p.B().AclGetuser().Username(redistest.AdminUser).Build(),
		p.B().Eval().Script("return redis.call('CONFIG', 'GET', 'masterauth')").Numkeys(0).Build(),
		p.B().Eval().Script("return redis.call('ACL', 'LIST')").Numkeys(0).Build(),
		p.B().Get().Key("app:secret-data").Build(),
		p.B().Keys().Pattern("*").Build(),
	} {
		what := strings.Join(cmd.Commands(), " ")
		res := p.Do(ctx, cmd)
		if res.Error() == nil {
			t.Errorf("peer's %s: answered %v; want refused", what, res)
			continue
		}
		if msg := res.Error().Error(); strings.Contains(msg, replicaSecret) || strings.Contains(msg, aclPassword) {
			t.Errorf("peer's %s: error shows a password: %s", what, msg)
		}
	}
}

// A master that refuses to read one lease's key (an ACL that leaves that
// key out) leaves that lease without an answer there, not the other leases
// renewed in the same renew.lua call.
func TestACLRenewalRefusedForOneKey(t *testing.T) {
	servers, _, _ := aclMasters(t, 3)
	const ttl = 600 * time.Millisecond
	c := newClient(t, servers, distlock.Config{TTL: ttl, SkipNotifyConfig: true})
	leases := map[string]*distlock.Lease{}
	for _, name := range []string{"iso-a", "iso-b", "iso-c"} {
		l, err := c.Acquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		leases[name] = l
	}
	for _, s := range servers[:2] {
		// The fence counters stay: a release raises them (release.lua).
		if _, err := s.Do("ACL", "SETUSER", "distlock", "resetkeys", "~distlock:iso-a", "~distlock:iso-c", "~distlock:fence:*"); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-leases["iso-b"].Done():
	case <-time.After(3 * time.Second):
		t.Fatal("iso-b, unreadable on a majority, was not lost")
	}
	time.Sleep(3 * ttl)
	for _, name := range []string{"iso-a", "iso-c"} {
		if err := leases[name].Err(); err != nil {
			t.Errorf("%s, renewed in the same calls as iso-b: %v", name, err)
		}
	}
}

// TestACLNoChannelRightsWaiterBehindNotLate: with the documented ACL less
// its channel rights, no waiter hears master 0 announce it first in line
// (leave.lua's publish fails quietly, the watch's SUBSCRIBE is refused).
// A waiter behind another that slept for the announcement anyway, every
// half to whole RetryMaxDelay, left the freed lock unused that long: 916,
// 933 and 923 ms here, RetryMaxDelay 2 s (found by an adversarial read of
// f38e6a8). Without its Client hearing master 0 it keeps the backoff.
func TestACLNoChannelRightsWaiterBehindNotLate(t *testing.T) {
	var rules []string
	for _, r := range docACL(t)[0] {
		if !strings.HasPrefix(r, "&") { // the documented ACL less its channel patterns
			rules = append(rules, r)
		}
	}
	servers := redistest.StartN(t, 3, redistest.Options{User: "distlock", Password: aclPassword, Rules: rules})
	cfg := distlock.Config{SkipNotifyConfig: true}
	holder := newClient(t, servers, cfg)
	first := newClient(t, servers, cfg) // leave.lua's announcement is refused
	cfg.RetryMaxDelay = 2 * time.Second
	behind := newClient(t, servers, cfg)
	d := freedLockLate(t, servers, holder, first, behind, "nochannel")
	t.Logf("the waiter behind got the freed lock %v after the release", d)
	if d > 500*time.Millisecond {
		t.Errorf("the lock was free but unused for %v (the waiter behind slept for an announcement that cannot come); want under 500ms", d)
	}
}

// freedLockLate measures how long after the holder's Release the waiter of
// behind takes name, the waiter of first (first in line) having left the
// line just before: the holder takes name, first waits first in line,
// behind waits behind it, first gives up, then the holder releases.
func freedLockLate(t *testing.T, servers []*redistest.Server, holder, first, behind *distlock.Client, name string) time.Duration {
	t.Helper()
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := holder.Acquire(ctx, name, distlock.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	heldEverywhere(t, servers, name)
	giveUp := firstInLine(t, ctx, servers, first, name)
	got := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		l, err := behind.Acquire(ctx, name)
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		l.Release(ctx)
	})
	waitWaiters(t, servers[0], name, 2)
	time.Sleep(300 * time.Millisecond) // the waiter behind hears master 0 by now, if it can
	giveUp()                           // it leaves the line
	time.Sleep(20 * time.Millisecond)
	released := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	at := <-got
	if at.IsZero() {
		t.FailNow()
	}
	return at.Sub(released)
}

// TestACLMixedChannelRightsWaiterBehindBounded: the waiter that leaves the
// line announces the next one (leave.lua's publish). When its Client's
// user has no channel rights, and the waiter behind's has them (so it
// sleeps for the announcement), the freed lock waits for the waiter
// behind's timer: up to RetryMaxDelay, as docs/watch.md says, and no
// longer (found by an adversarial read: 680 ms with RetryMaxDelay 2 s,
// where the backoff gave milliseconds). A delayed wake of waiters behind
// when the lock stays free would shorten it; not built (see the issue's
// note).
func TestACLMixedChannelRightsWaiterBehindBounded(t *testing.T) {
	var full, nochan []string
	for _, r := range docACL(t)[0] {
		full = append(full, r)
		if !strings.HasPrefix(r, "&") {
			nochan = append(nochan, r)
		}
	}
	servers := redistest.StartN(t, 3, redistest.Options{User: "distlock", Password: aclPassword, Rules: full})
	var nochanURLs []string
	for _, s := range servers {
		if _, err := s.Do(append([]string{"ACL", "SETUSER", "nochan"}, nochan...)...); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Do("CONFIG", "SET", "notify-keyspace-events", "Kgx"); err != nil {
			t.Fatal(err)
		}
		nochanURLs = append(nochanURLs, "redis://"+url.UserPassword("nochan", aclPassword).String()+"@"+s.Addr()+"/0")
	}
	const maxDelay = time.Second
	cfg := distlock.Config{SkipNotifyConfig: true}
	holder := newClient(t, servers, cfg)
	firstCfg := cfg
	firstCfg.Nodes = nochanURLs
	first := newClient(t, nil, firstCfg) // no channel rights: its leave announces nothing
	cfg.RetryMaxDelay = maxDelay
	behind := newClient(t, servers, cfg) // the documented ACL: it hears master 0
	d := freedLockLate(t, servers, holder, first, behind, "mixedacl")
	t.Logf("the waiter behind got the freed lock %v after the release (RetryMaxDelay %v)", d, maxDelay)
	if d > maxDelay+500*time.Millisecond {
		t.Errorf("the lock was free but unused for %v; want at most RetryMaxDelay (%v) and a margin", d, maxDelay)
	}
}
