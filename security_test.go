package distlock_test

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Security: who can touch a lease's keys, and how a Client reaches masters
// that want TLS or a password.

// keyValue returns the value of the lock key name on s ("" if missing).
func keyValue(t *testing.T, s *redistest.Server, name string) string {
	t.Helper()
	v, err := s.Do("GET", "distlock:"+name)
	if err != nil {
		t.Fatalf("GET on %s: %v", s.Addr(), err)
	}
	return v
}

// keyPTTL returns the remaining life of the lock key name on s, in ms.
func keyPTTL(t *testing.T, s *redistest.Server, name string) int {
	t.Helper()
	v, err := s.Do("PTTL", "distlock:"+name)
	if err != nil {
		t.Fatalf("PTTL on %s: %v", s.Addr(), err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

// A lease's value, the secret that lets it renew and delete its keys, is
// 128 bits drawn at random for each lease: 32 hex digits, the same on every
// master, never repeated, and with no bit fixed. What follows them in the
// stored value is public: '|' and the owner (TestOwnerDefault).
func TestSecurityLeaseValueIs128RandomBits(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	const leases = 200
	seen := make(map[string]bool, leases)
	var ones [128]int
	for range leases {
		l, err := c.TryAcquire(t.Context(), "value")
		if err != nil {
			t.Fatal(err)
		}
		// A majority answered; the last master's SET may still be on its way.
		var v string
		for _, s := range servers {
			got := keyValue(t, s, "value")
			if got != "" && v != "" && got != v {
				t.Fatalf("value on %s: got %q; want %q as on another master", s.Addr(), got, v)
			}
			if got != "" {
				v = got
			}
		}
		random, owner, _ := strings.Cut(v, "|")
		if owner != l.Owner() {
			t.Fatalf("lease value %q: owner %q; want %q after the random part", v, owner, l.Owner())
		}
		b, err := hex.DecodeString(random)
		if err != nil || len(b) != 16 {
			t.Fatalf("lease value %q: got %d bytes (err %v); want 32 hex digits, 16 bytes", v, len(b), err)
		}
		if seen[v] {
			t.Fatalf("lease value %q drawn twice", v)
		}
		seen[v] = true
		for i := range 128 {
			ones[i] += int(b[i/8] >> (i % 8) & 1)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		noLockKeys(t, servers) // Release returns at a majority: the last delete may come after
	}
	// With 200 random values a bit that never changes has odds of 2^-199.
	for i, n := range ones {
		if n == 0 || n == leases {
			t.Errorf("bit %d of the lease value is %d in all %d leases; want random", i, n/leases, leases)
		}
	}
}

// A Client that tries to take a held lock cannot delete the holder's keys,
// even though its failed attempt cleans up on every master.
func TestSecurityContenderCannotRelease(t *testing.T) {
	servers := masters(t, 3)
	holder := newClient(t, servers, distlock.Config{})
	other := newClient(t, servers, distlock.Config{})
	l, err := holder.Acquire(t.Context(), "held")
	if err != nil {
		t.Fatal(err)
	}
	v := heldValue(t, servers, "held")
	for range 5 {
		if _, err := other.TryAcquire(t.Context(), "held"); !errors.Is(err, distlock.ErrLocked) {
			t.Fatalf("TryAcquire of a held lock: got %v; want ErrLocked", err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the contender's clean-ups run in the background
	for _, s := range servers {
		if got := keyValue(t, s, "held"); got != v {
			t.Errorf("key on %s after a contender's attempts: got %q; want the holder's %q", s.Addr(), got, v)
		}
	}
	if err := l.Err(); err != nil {
		t.Errorf("holder's Err: got %v; want nil", err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// A holder whose lease ran out while it was cut off from the masters
// cannot release or extend the lock once a second Client has taken it:
// its Release and Extend report the loss and leave the new holder's keys
// and their expiry alone.
func TestSecurityExpiredHolderCannotReleaseOrExtend(t *testing.T) {
	servers := masters(t, 3)
	proxies := redistest.ProxyN(t, servers)
	urls := make([]string, len(proxies))
	for i, p := range proxies {
		urls[i] = p.URL()
	}
	old, err := distlock.New(distlock.Config{Nodes: urls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	successor := newClient(t, servers, distlock.Config{})

	l, err := old.Acquire(t.Context(), "taken", distlock.WithTTL(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range proxies {
		p.Cut()
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lease cut off from every master still held after 5s; want lost within its TTL")
	}
	// Let the old keys expire everywhere first: a successor that won a
	// majority while one master still held an old key (they expire a few
	// hundred microseconds apart) would never be on that master, and the
	// test needs its value on every master.
	noLockKeys(t, servers)
	next, err := successor.Acquire(ctxTimeout(t, 5*time.Second), "taken", distlock.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	v := heldValue(t, servers, "taken")
	for _, p := range proxies {
		p.Restore()
	}

	if err := l.Release(t.Context()); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Release of the expired lease: got %v; want ErrLeaseLost", err)
	}
	if err := l.Extend(t.Context(), time.Minute); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Extend of the expired lease: got %v; want ErrLeaseLost", err)
	}
	for _, s := range servers {
		if got := keyValue(t, s, "taken"); got != v {
			t.Errorf("key on %s: got %q; want the successor's %q", s.Addr(), got, v)
		}
		if pttl := keyPTTL(t, s, "taken"); pttl <= 0 || pttl > 10000 {
			t.Errorf("PTTL on %s: got %d ms; want within (0, 10000] (the successor's TTL, not extended)", s.Addr(), pttl)
		}
	}
	if err := next.Err(); err != nil {
		t.Errorf("successor's Err: got %v; want nil", err)
	}
	if err := next.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	noLockKeys(t, servers)
}

// When another value is written over a lease's keys on a majority (a
// forged SET, an operator's mistake), the lease is lost at its next
// renewal, and its Release and Extend leave the foreign keys alone.
func TestSecurityForgedValueEndsLease(t *testing.T) {
	servers := masters(t, 3)
	c := newClient(t, servers, distlock.Config{})
	l, err := c.Acquire(t.Context(), "forged", distlock.WithTTL(900*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	const forged = "00112233445566778899aabbccddeeff"
	for _, s := range servers {
		if _, err := s.Do("SET", "distlock:forged", forged, "PX", "60000"); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-l.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("lease whose keys were overwritten still held after 3s; want lost at its next renewal")
	}
	if err := l.Err(); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Err: got %v; want ErrLeaseLost", err)
	}
	if err := l.Release(t.Context()); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Release: got %v; want ErrLeaseLost", err)
	}
	if err := l.Extend(t.Context(), 10*time.Second); !errors.Is(err, distlock.ErrLeaseLost) {
		t.Errorf("Extend: got %v; want ErrLeaseLost", err)
	}
	for _, s := range servers {
		if got := keyValue(t, s, "forged"); got != forged {
			t.Errorf("key on %s: got %q; want the forged value left alone", s.Addr(), got)
		}
		if pttl := keyPTTL(t, s, "forged"); pttl <= 10000 {
			t.Errorf("PTTL on %s: got %d ms; want > 10000 (not changed by Extend)", s.Addr(), pttl)
		}
		s.Do("DEL", "distlock:forged")
	}
}

// tlsMasters starts n TLS-only masters with a CA of the test's own.
func tlsMasters(t *testing.T, n int) ([]*redistest.Server, *redistest.TLSFiles) {
	t.Helper()
	files, err := redistest.NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return redistest.StartN(t, n, redistest.Options{TLS: files}), files
}

// Masters that speak TLS only, reached with NodeOptions whose TLSConfig
// trusts the test's CA: locks, watches and fencing work as over plain TCP.
func TestTLSNodeOptions(t *testing.T) {
	servers, files := tlsMasters(t, 3)
	opts := make([]rueidis.ClientOption, len(servers))
	for i, s := range servers {
		opts[i] = rueidis.ClientOption{InitAddress: []string{s.Addr()}, TLSConfig: files.ClientConfig()}
	}
	c, err := distlock.New(distlock.Config{NodeOptions: opts})
	if err != nil {
		t.Fatalf("New over TLS: %v", err)
	}
	defer c.Close()
	events, err := c.Watch(ctxTimeout(t, 10*time.Second), "tls")
	if err != nil {
		t.Fatalf("Watch over TLS: %v", err)
	}
	var prev uint64
	for range 3 {
		l, err := c.Acquire(t.Context(), "tls")
		if err != nil {
			t.Fatal(err)
		}
		if l.Token() <= prev {
			t.Errorf("token %d after %d; want larger", l.Token(), prev)
		}
		prev = l.Token()
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case ev := <-events:
		if ev.Type != distlock.EventAcquired && ev.Type != distlock.EventReleased {
			t.Errorf("first event: got %v; want acquired or released", ev.Type)
		}
	case <-time.After(5 * time.Second):
		t.Error("no watch event over TLS within 5s")
	}
}

// rediss:// URLs in Config.Nodes verify the masters' certificates against
// the system's roots: a process told to trust the CA (SSL_CERT_FILE) takes
// the lock, and this process, which does not, fails New with an error
// naming every master.
func TestTLSURL(t *testing.T) {
	servers, files := tlsMasters(t, 3)
	urls := redistest.URLs(servers)
	for _, u := range urls {
		if !strings.HasPrefix(u, "rediss://") {
			t.Fatalf("URL %q; want rediss://", u)
		}
	}

	_, err := distlock.New(distlock.Config{Nodes: urls})
	if err == nil {
		t.Fatal("New with rediss:// to masters signed by an untrusted CA: got nil error; want a certificate error")
	}
	for i, s := range servers {
		if want := "master " + strconv.Itoa(i) + " (rediss://" + s.Addr() + "/0)"; !strings.Contains(err.Error(), want) {
			t.Errorf("New's error does not name %s: %v", want, err)
		}
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("New's error: got %v; want it to say the certificate is not trusted", err)
	}

	startChild(t, servers, "tls-url", "acquired", "SSL_CERT_FILE="+files.CAFile, "SSL_CERT_DIR="+t.TempDir())
	heldValue(t, servers, "tls-url") // the child holds it over rediss://
}

// An ACL user and password in the URL authenticate every connection,
// including the watch connection that runs CONFIG SET.
func TestACLUserInURL(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{User: "locker", Password: "pa55-w0rd"})
	urls := redistest.URLs(servers)
	if !strings.Contains(urls[0], "locker:pa55-w0rd@") {
		t.Fatalf("URL %q; want user and password in it", urls[0])
	}
	c, err := distlock.New(distlock.Config{Nodes: urls})
	if err != nil {
		t.Fatalf("New with an ACL user: %v", err)
	}
	defer c.Close()
	if _, err := c.Watch(ctxTimeout(t, 10*time.Second), "acl"); err != nil {
		t.Fatalf("Watch with an ACL user: %v", err)
	}
	l, err := c.Acquire(t.Context(), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if got := heldValue(t, servers, "acl"); got == "" {
		t.Error("no lock key on master 0 after Acquire")
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A wrong password fails New when it is wrong for every master, and the
// first Acquire when only some masters refuse it; either error names each
// refusing master and never shows the password.
func TestWrongPassword(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{User: "locker", Password: "right-one"})
	const wrong = "not-the-password"
	wrongURL := func(s *redistest.Server) string { return "redis://locker:" + wrong + "@" + s.Addr() + "/0" }

	all := make([]string, len(servers))
	for i, s := range servers {
		all[i] = wrongURL(s)
	}
	_, err := distlock.New(distlock.Config{Nodes: all})
	if err == nil {
		t.Fatal("New with a wrong password for every master: got nil error; want an error")
	}
	for i, s := range servers {
		if want := "master " + strconv.Itoa(i) + " (redis://" + s.Addr() + "/0)"; !strings.Contains(err.Error(), want) {
			t.Errorf("New's error does not name %s: %v", want, err)
		}
	}
	if !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("New's error: got %v; want it to carry the server's WRONGPASS", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("New's error shows the password: %v", err)
	}

	// Right for master 0 only: New succeeds, the first Acquire fails
	// without a quorum, naming masters 1 and 2.
	some := []string{servers[0].URL(), wrongURL(servers[1]), wrongURL(servers[2])}
	c, err := distlock.New(distlock.Config{Nodes: some})
	if err != nil {
		t.Fatalf("New with master 0 reachable: %v", err)
	}
	defer c.Close()
	_, err = c.TryAcquire(t.Context(), "pw")
	if !errors.Is(err, distlock.ErrNoQuorum) {
		t.Fatalf("TryAcquire with 2 of 3 masters refusing the password: got %v; want ErrNoQuorum", err)
	}
	for i := 1; i < 3; i++ {
		if want := "master " + strconv.Itoa(i) + ": redis://" + servers[i].Addr() + "/0"; !strings.Contains(err.Error(), want) {
			t.Errorf("TryAcquire's error does not name %s: %v", want, err)
		}
	}
	if !strings.Contains(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), wrong) {
		t.Errorf("TryAcquire's error: got %v; want WRONGPASS and no password", err)
	}
}

// No error carries a password, whether its URL parses or not: New's
// error for a malformed entry hides what lies between the scheme and the
// last '@', and never quotes url.Parse's or net.SplitHostPort's error,
// which quote the input. Each case names pieces of its password, none of
// which may appear.
func TestSecurityNoPasswordInConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   string
		pieces []string // of the password; none may appear in the error
	}{
		{"hash in password", "redis://app:s3cr#t@127.0.0.1:1/0", []string{"s3cr", "#t"}},
		{"hash, password only", "redis://:s3cr#t@127.0.0.1:1/0", []string{"s3cr", "#t"}},
		{"no scheme", "app:s3cret@127.0.0.1:1", []string{"s3cret"}},
		{"no scheme, no port", "app:s3cret@127.0.0.1", []string{"s3cret"}},
		{"no scheme, hash", "app:s3cr#t@127.0.0.1:1", []string{"s3cr"}},
		{"slash in password", "redis://app:s3/cret@127.0.0.1:1/0", []string{"s3/", "cret"}},
		{"question mark in password", "redis://app:s3?cret@127.0.0.1:1/0", []string{"s3?", "cret"}},
		{"numeric, slash", "redis://app:1234/5678@127.0.0.1:1/0", []string{"1234", "5678"}},
		{"numeric, hash", "redis://app:1234#5678@127.0.0.1:1/0", []string{"1234", "5678"}},
		{"numeric, question mark", "redis://app:1234?5678@127.0.0.1:1/0", []string{"1234", "5678"}},
		{"bad escape", "redis://app:s3%zzcret@127.0.0.1:1/0", []string{"s3", "zzcret", "%zz"}},
		{"space", "redis://app:s3 cret@127.0.0.1:1/0", []string{"s3 ", "cret"}},
		{"control character", "redis://app:s3\x7fcret@127.0.0.1:1/0", []string{"s3\x7f", "cret"}},
		{"bracket host", "redis://app:s3cret@[127.0.0.1:1/0", []string{"s3cret"}},
		{"bad port", "redis://app:s3cret@127.0.0.1:99999/0", []string{"s3cret"}},
		{"bad db", "redis://app:s3cret@127.0.0.1:1/x", []string{"s3cret"}},
		{"bad path", "redis://app:s3cret@127.0.0.1:1/0/1", []string{"s3cret"}},
		{"bad scheme", "http://app:s3cret@127.0.0.1:1/0", []string{"s3cret"}},
		{"scheme typo", "redis:/app:s3cret@127.0.0.1:1/0", []string{"s3cret"}},
		{"at in password, hash", "redis://app:p@ss#w0rd@127.0.0.1:1/0", []string{"p@ss", "w0rd"}},
		{"rediss, hash", "rediss://app:s3cr#t@127.0.0.1:1/0", []string{"s3cr"}},
		// A list split at a ',' in the password (a nodes file's line
		// "redis://app:s3cret,PW@host:1/0"): the operator use test saw
		// "redis://app:s3cret" quoted whole.
		{"cut at a comma", "redis://app:s3cret", []string{"s3cret"}},
		// The same with a ':' in the password before the ',': the
		// text after the last ':' is digits, and read as a port
		// (operator review, 2026-12-07).
		{"cut at a comma, colon and digits", "redis://admin:Tr0ub4dor:3", []string{"Tr0ub4dor"}},
		// rueidis reads no password from the query: the key is refused,
		// and its value not quoted (CLI use test, 2026-12-06).
		{"password in the query", "redis://127.0.0.1:1/0?password=zzpass", []string{"zzpass"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := distlock.New(distlock.Config{Nodes: []string{tc.node}})
			if err == nil {
				c.Close()
				t.Fatalf("New(%q): got nil error; want a configuration error", tc.node)
			}
			for _, p := range tc.pieces {
				if strings.Contains(err.Error(), p) {
					t.Errorf("New's error shows %q of the password: %v", p, err)
				}
			}
			if !strings.Contains(err.Error(), "Config.Nodes[0]") {
				t.Errorf("New's error: got %v; want it to name Config.Nodes[0]", err)
			}
		})
	}
}

// RedactNode hides the values of query options too, keeping their keys:
// the CLI's "are the same server" message quoted ?password=zzpass.
func TestRedactNodeQuery(t *testing.T) {
	for in, want := range map[string]string{
		"redis://127.0.0.1:7304/0?password=zzpass":        "redis://127.0.0.1:7304/0?password=xxxxx",
		"redis://app:pw@127.0.0.1:1/0?db=1&client_name=x": "redis://app:xxxxx@127.0.0.1:1/0?db=xxxxx&client_name=xxxxx",
		"redis://app:s3?cret@127.0.0.1:1/0":               "redis://app:xxxxx@127.0.0.1:1/0",
		"redis://127.0.0.1:1/0":                           "redis://127.0.0.1:1/0",
		// Found by a CLI use test: a '?' or '@' inside a value, an
		// encoded '='.
		"redis://127.0.0.1:7101/0?password=a?b3cr3t": "redis://127.0.0.1:7101/0?password=xxxxx",
		"redis://127.0.0.1:7101/0?password=ab@cr3t":  "redis://127.0.0.1:7101/0?password=xxxxx",
		"redis://127.0.0.1:7101/0?password%3Ds3cr3t": "redis://127.0.0.1:7101/0?password%3Dxxxxx",
	} {
		if got := distlock.RedactNode(in); got != want {
			t.Errorf("RedactNode(%q) = %q; want %q", in, got, want)
		}
	}
}

// New refuses a query that would carry a password unused, and its error
// quotes no part of one (a CLI use test: a ';' let ?password= through, an
// encoded '=' put the secret in the "unknown query option" message).
func TestNodeQueryRefusedWithoutSecret(t *testing.T) {
	for _, n := range []string{
		"redis://127.0.0.1:1/0?password=s3cr3t;",
		"redis://127.0.0.1:1/0?pass=s3cr3t;x=1",
		"redis://127.0.0.1:1/0?password%3Ds3cr3t",
		"redis://127.0.0.1:1/0?password=a?s3cr3t",
		"redis://127.0.0.1:1/0?password=ab@s3cr3t",
	} {
		_, err := distlock.New(distlock.Config{Nodes: []string{n}})
		if err == nil {
			t.Errorf("New with node %q: no error; want the query refused", n)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("New with node %q: %v; want no part of the password", n, err)
		}
	}
}
