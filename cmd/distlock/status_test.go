package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/redistest"
)

// TestStatus: a held lock exits 1 and says so per master, a free one 0;
// --json parses.
func TestStatus(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	l := hold(t, nodes, "st")
	// Wait for stragglers of the acquire: then every master holds it.
	waitFor(t, "the lock on 3 masters", func() bool {
		return strings.Contains(run(t, nodes, "status", "st").stdout, "(3 of 3 masters agree")
	})

	r := run(t, nodes, "status", "st")
	r.want(t, 1)
	if !strings.HasPrefix(r.stdout, `lock "st": held (3 of 3 masters agree, 2 needed)`) {
		t.Errorf("status of a held lock:\n%s", r.stdout)
	}
	row := regexp.MustCompile(`(?m)^redis://127\.0\.0\.1:\d+/0 +held +([0-9a-f]{8}) +[0-9.]+m?s +(\d+)$`)
	if rows := row.FindAllStringSubmatch(r.stdout, -1); len(rows) != 3 {
		t.Errorf("want 3 rows ADDR held HOLDER TTL FENCE:\n%s", r.stdout)
	}

	r = run(t, nodes, "status", "--json", "st")
	r.want(t, 1)
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
	}
	if st.Name != "st" || st.State != "held" || st.Agree != 3 || st.Quorum != 2 || st.TTLMs <= 0 || len(st.Masters) != 3 {
		t.Errorf("--json: %+v; want st held by 3 of 3, quorum 2, ttl > 0", st)
	}
	for i, m := range st.Masters {
		if !m.Reachable || !m.Held || m.Holder == "" || m.Fence < int64(l.Token()>>6) || m.Addr != servers[i].URL() {
			t.Errorf("--json master %d: %+v", i, m)
		}
	}

	r = run(t, nodes, "status", "free")
	r.want(t, 0)
	if !strings.HasPrefix(r.stdout, `lock "free": free (3 of 3 masters agree, 2 needed)`) {
		t.Errorf("status of a free lock:\n%s", r.stdout)
	}

	// With two of three masters gone, nobody can tell.
	servers[1].Kill()
	servers[2].Kill()
	r = run(t, nodes, "status", "st")
	r.want(t, 2)
	if !strings.Contains(r.stdout, "cannot tell: 1 of 3 masters answered") || strings.Count(r.stdout, "unreachable") != 2 {
		t.Errorf("status with 2 of 3 masters down:\n%s", r.stdout)
	}
	// Each down master's address once, in the MASTER column: its error
	// beside it does not repeat it (nor does --json's "error", beside
	// "addr"), as when no master answers at all.
	for _, n := range nodes[1:] {
		if c := strings.Count(r.stdout, n); c != 1 {
			t.Errorf("%s appears %d times; want once, in the MASTER column:\n%s", n, c, r.stdout)
		}
	}
	r = run(t, nodes, "status", "--json", "st")
	var down statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &down); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
	}
	for _, m := range down.Masters[1:] {
		if m.Error == "" || strings.Contains(m.Error, m.Addr) {
			t.Errorf("--json master %s: error %q; want the error without the address", m.Addr, m.Error)
		}
	}
}

// TestStatusToken: the TOKEN column shows fence counters as tokens, as
// the holder sees its own in DISTLOCK_TOKEN, and a key without expiry
// shows TTL none.
func TestStatusToken(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	r := run(t, nodes, "run", "tok", "--", "sh", "-c", `echo "$DISTLOCK_TOKEN"`)
	r.want(t, 0)
	token := strings.TrimSpace(r.stdout)
	r = run(t, nodes, "status", "tok")
	r.want(t, 0)
	if !regexp.MustCompile(`(?m)\s` + token + `$`).MatchString(r.stdout) {
		t.Errorf("status shows no TOKEN %s, the token the command saw:\n%s", token, r.stdout)
	}

	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:forever", "someone"); err != nil {
			t.Fatal(err)
		}
	}
	r = run(t, nodes, "status", "forever")
	r.want(t, 1)
	if strings.Contains(r.stdout, "-1ns") || strings.Count(r.stdout, " none ") != 3 {
		t.Errorf("status of a key without expiry; want TTL none on each master:\n%s", r.stdout)
	}
}

// TestStatusNoExpiry: a lock whose keys have no expiry on a majority of
// masters (another program's SET) is held with no expiry, not for 0s;
// one key without expiry beside a majority's other key counts as kept,
// not as expired.
func TestStatusNoExpiry(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:forever", "someone"); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, nodes, "status", "forever")
	r.want(t, 1)
	verdict, _, _ := strings.Cut(r.stdout, "\n")
	if want := `lock "forever": held (3 of 3 masters agree, 2 needed); no expiry: not a distlock lease, or set by another program`; verdict != want {
		t.Errorf("status of keys without expiry: verdict %q; want %q\n%s", verdict, want, r.stdout)
	}

	// Master 0 keeps the key for ever, master 1 for a minute: a majority
	// keeps it a minute.
	if _, err := servers[0].Do("SET", "distlock:mixed", "someone"); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[1].Do("SET", "distlock:mixed", "someone", "PX", "60000"); err != nil {
		t.Fatal(err)
	}
	r = run(t, nodes, "status", "mixed")
	r.want(t, 1)
	if !regexp.MustCompile(`^lock "mixed": held \(2 of 3 masters agree, 2 needed\); a majority keeps it (59\.\d+|1m0)s unless renewed\n`).MatchString(r.stdout) {
		t.Errorf("status of a key without expiry and one of a minute; want a majority to keep it about a minute:\n%s", r.stdout)
	}
}

// A lock key without expiry on a majority (never a distlock lease's):
// --json says ttl_ms -1, as PTTL does, not 0, which reads "expires now".
func TestStatusJSONNoExpiry(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:ne", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|o|m"); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, nodes, "status", "--json", "ne")
	r.want(t, 1)
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.TTLMs != -1 || st.Masters[0].TTLMs != -1 {
		t.Errorf("held without expiry: ttl_ms %d, master 0's %d; want -1", st.TTLMs, st.Masters[0].TTLMs)
	}
}

// A fence counter that another program overwrote with something that is
// not a number neither makes its master unreachable nor hides a lock that
// every master holds: the verdict goes by the lock key.
func TestStatusBadFenceCounter(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	run(t, nodes, "run", "bf", "--", "true").want(t, 0)
	fence := fenceCounterKey(t, servers)
	for i, s := range servers {
		if _, err := s.Do("SET", "distlock:bf", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|o|m", "PX", "60000"); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if _, err := s.Do("SET", fence, "notanumber"); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := run(t, nodes, "status", "bf")
	if strings.Contains(r.stdout, "unreachable") || !strings.Contains(r.stdout, "unreadable") {
		t.Errorf("want masters 0 and 1 held with an unreadable token, none unreachable:\n%s", r.stdout)
	}
	r.want(t, 1) // every master holds one value with a TTL: held
	if !strings.Contains(r.stdout, "warning: no acquire can win") {
		t.Errorf("want the warning that no acquire can win (2 of 3 counters unreadable):\n%s", r.stdout)
	}
}

// A lock that is free on every master, with the fence counter unreadable
// on a majority (another program's key there): status says free, as the
// lock key says, and warns that no acquire can win, which run then shows
// (exit 123, no quorum).
func TestStatusFreeButCountersUnusable(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	run(t, nodes, "run", "fw", "--", "true").want(t, 0)
	r := run(t, nodes, "status", "fw")
	r.want(t, 0)
	if strings.Contains(r.stdout, "warning") {
		t.Fatalf("counters fine, yet a warning:\n%s", r.stdout)
	}
	fence := fenceCounterKey(t, servers)
	for _, s := range servers[:2] {
		if _, err := s.Do("DEL", fence); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Do("LPUSH", fence, "x"); err != nil {
			t.Fatal(err)
		}
	}
	r = run(t, nodes, "status", "fw")
	r.want(t, 0) // free: no master has the lock key
	if !strings.Contains(r.stdout, "warning: no acquire can win: the fence counter is unreadable on 2 of 3 masters") || !strings.Contains(r.stdout, "1 left, 2 needed") {
		t.Errorf("want free with a warning that 2 of 3 counters are unreadable:\n%s", r.stdout)
	}
	r = run(t, nodes, "status", "--json", "fw")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
	}
	if st.State != "free" || !strings.HasPrefix(st.Warning, "no acquire can win") || st.Masters[0].FenceErr == "" || st.Masters[2].FenceErr != "" {
		t.Errorf("--json: %+v; want free, the warning, fence_error on masters 0 and 1 only", st)
	}
	run(t, nodes, "run", "--try", "fw", "--", "true").want(t, 123)
}

// TestStatusJSONUnreachable: with no master reachable, --json still lists
// every master (unreachable, with its error) and the quorum, as it does
// when some answer, so that a script reads one shape.
func TestStatusJSONUnreachable(t *testing.T) {
	nodes := []string{noMaster, "redis://127.0.0.1:2/0", "redis://127.0.0.1:3/0"}
	r := run(t, nodes, "status", "--json", "job")
	r.want(t, 2)
	var st statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
	}
	if st.State != "unknown" || st.Quorum != 2 || len(st.Masters) != 3 || !strings.Contains(st.Error, "no master reachable") {
		t.Fatalf("--json: %+v; want unknown, quorum 2, 3 masters, the error", st)
	}
	for i, m := range st.Masters {
		if m.Reachable || m.Held || m.Error == "" || !strings.Contains(nodes[i], strings.TrimSuffix(strings.TrimPrefix(m.Addr, "redis://"), "/0")) {
			t.Errorf("--json master %d: %+v; want %s unreachable, with its error", i, m, nodes[i])
		}
	}
}

// fenceCounterKey returns the one fence counter on the masters after one
// run, once every master has its acquire and release (run returns at a
// majority): no straggler changes the counter after.
func fenceCounterKey(t *testing.T, servers []*redistest.Server) string {
	t.Helper()
	var fence string
	for _, s := range servers {
		waitFor(t, "one fence counter and no lock key on "+s.Addr(), func() bool {
			keys, err := s.Do("KEYS", "distlock:*")
			if err != nil {
				t.Fatal(err)
			}
			// The counter; tombstones (fence:dead:) may stay beside it.
			k, counters := "", 0
			for _, key := range strings.Split(keys, "\n") {
				switch key = strings.Trim(strings.TrimSpace(key), "[]\""); {
				case strings.HasPrefix(key, "distlock:fence:{"):
					k, counters = key, counters+1
				case !strings.HasPrefix(key, "distlock:fence:"):
					return false // the lock key, or the release's
				}
			}
			if counters != 1 {
				return false
			}
			fence = k
			return true
		})
	}
	return fence
}

// TestWaitSaysCounterUnreadable: a waiting run (or hold) whose masters
// answer but refuse every acquire, their fence counters unreadable
// (another program's value there), says so while it waits, as status
// does, where it said nothing until its --timeout (operator review,
// 2026-12-07: hold waited silently until killed).
func TestWaitSaysCounterUnreadable(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	// The lock's fence counter: the key a first acquire creates.
	run(t, nodes, "run", "ctr", "--", "true").want(t, 0)
	keys, err := servers[0].Do("KEYS", "distlock:fence:{*")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(keys)
	for _, s := range servers[:2] {
		if _, err := s.Do("SET", key, "abc"); err != nil {
			t.Fatal(err)
		}
	}
	r := run(t, nodes, "run", "--timeout", "2s", "ctr", "--", "true")
	if r.code == 0 {
		t.Fatalf("run acquired a lock whose counter is unreadable on 2 of 3 masters:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: no acquire can win: the fence counter is unreadable on 2 of 3 masters") {
		t.Errorf("stderr while waiting: %q; want the unreadable counters named", r.stderr)
	}
}
