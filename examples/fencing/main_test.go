package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The scenario re-executes this binary as holder A.
	if os.Getenv(roleEnv) == "A" {
		os.Exit(holderA())
	}
	goleak.VerifyTestMain(m)
}

// TestScenario plays the paused-holder scenario against three Redis masters
// of its own and the PostgreSQL of DISTLOCK_PG_DSN (default DefaultDSN):
// A's late write must be refused and the row must keep B's token.
func TestScenario(t *testing.T) {
	dsn := pgDSN(t)
	nodes := startRedis(t, 3)

	var out bytes.Buffer
	rep, err := run(t.Context(), nodes, dsn, &out, options{TTL: time.Second, Pause: 2 * time.Second})
	text := out.String()
	t.Logf("output:\n%s", text)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	if !rep.LateRefused {
		t.Error("A's late write was accepted, want refused")
	}
	if rep.TokenB <= rep.TokenA {
		t.Errorf("B's token %d is not greater than A's %d", rep.TokenB, rep.TokenA)
	}
	if rep.StoredToken != rep.TokenB || rep.StoredValue != "v2" {
		t.Errorf("row holds token %d, value %q; want B's token %d, value \"v2\"", rep.StoredToken, rep.StoredValue, rep.TokenB)
	}

	a, b := strconv.FormatUint(rep.TokenA, 10), strconv.FormatUint(rep.TokenB, 10)
	for _, want := range []string{
		"A: token " + a + " wrote v1\n",
		"A: paused (SIGSTOP)\n",
		"B: token " + b + " wrote v2\n",
		"A: woke, late write with token " + a + ": REFUSED (stale token)\n",
		fmt.Sprintf("storage: row holds token %s, value %q\n", b, "v2"),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^A: its lease says: distlock: lease lost`).MatchString(text) {
		t.Error("A did not report its lease as lost")
	}
	// The lines come in the order of the scenario.
	last := -1
	for _, line := range []string{"A: token ", "A: paused", "B: acquired", "B: token ", "A: resumed", "A: woke", "storage: row holds"} {
		i := strings.Index(text, line)
		if i <= last {
			t.Errorf("%q is out of order", line)
		}
		last = i
	}

	// Nothing left behind in PostgreSQL.
	if !rep.TableDropped {
		t.Errorf("table %s not dropped", rep.Table)
	}
	db, err := connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var exists bool
	if err := db.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, ident(rep.Table)).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("table %s still exists", rep.Table)
	}
}

// TestFencedWrite checks the conditional write alone: equal and larger
// tokens are accepted, a smaller one is refused.
func TestFencedWrite(t *testing.T) {
	dsn := pgDSN(t)
	ctx := t.Context()
	db, err := connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) }) // after the drop below
	table := "fenced_resource_" + randomHex(4)
	if _, err := db.Exec(ctx, `CREATE TABLE `+ident(table)+` (name text PRIMARY KEY, token bigint NOT NULL, value text)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(context.Background(), `DROP TABLE `+ident(table)); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	})

	for _, step := range []struct {
		token uint64
		value string
		want  bool
	}{
		{100, "first", true},   // new row
		{100, "again", true},   // the same holder writes again
		{164, "later", true},   // a later holder
		{100, "stale", false},  // the earlier holder, too late
		{163, "stale2", false}, // anything below the largest seen
	} {
		got, err := fencedWrite(ctx, db, table, "r", step.token, step.value)
		if err != nil {
			t.Fatal(err)
		}
		if got != step.want {
			t.Errorf("write with token %d accepted = %v, want %v", step.token, got, step.want)
		}
	}
	var token int64
	var value string
	if err := db.QueryRow(ctx, `SELECT token, value FROM `+ident(table)+` WHERE name = 'r'`).Scan(&token, &value); err != nil {
		t.Fatal(err)
	}
	if token != 164 || value != "later" {
		t.Errorf("row = (%d, %q), want (164, \"later\")", token, value)
	}
}

func TestPauseMustExceedTTL(t *testing.T) {
	_, err := run(t.Context(), nil, "", &bytes.Buffer{}, options{TTL: time.Second, Pause: time.Second})
	if err == nil || !strings.Contains(err.Error(), "must be longer than the TTL") {
		t.Errorf("run with pause = TTL: err = %v, want a complaint about the pause", err)
	}
}

func TestSplitNodes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"a:1, b:2 ,,c:3", []string{"a:1", "b:2", "c:3"}},
	} {
		if got := splitNodes(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitNodes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// pgDSN returns the PostgreSQL to test against, failing the test with a
// clear message when it cannot be reached: a skipped test would hide that
// the fencing was never checked against real storage.
func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := envOr("DISTLOCK_PG_DSN", DefaultDSN)
	db, err := connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("PostgreSQL is needed for this test and is not reachable: %v\n"+
			"Start PostgreSQL (trust auth, database \"test\") or set DISTLOCK_PG_DSN.", err)
	}
	db.Close(context.Background())
	return dsn
}

// startRedis starts n redis-server processes on free ports of 127.0.0.1,
// memory only, and returns their URLs; they are killed when the test ends.
// (The library's internal/redistest cannot be imported from this module.)
func startRedis(t *testing.T, n int) []string {
	t.Helper()
	exe, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed for this test: %v (install it, e.g. apt-get install redis-server)", err)
	}
	var urls []string
	for range n {
		var addr string
		var lastErr error
		for try := 0; try < 5 && addr == ""; try++ {
			addr, lastErr = startOneRedis(t, exe)
		}
		if addr == "" {
			t.Fatalf("start redis-server: %v", lastErr)
		}
		urls = append(urls, "redis://"+addr+"/0")
	}
	return urls
}

// startOneRedis starts one redis-server and waits until it answers PING.
// The port is free when chosen but may be taken before redis-server binds
// it; the caller retries then.
func startOneRedis(t *testing.T, exe string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	cmd := exec.Command(exe, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }

	deadline := time.Now().Add(5 * time.Second)
	for {
		if ping(addr) {
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("redis-server on port %d exited: %s", port, log.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("redis-server on port %d did not answer PING within 5s: %s", port, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping reports whether a Redis server at addr answers PING.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}
