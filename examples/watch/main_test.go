package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// holderEnv, when set to a comma-separated list of masters, makes this
// test binary a lock holder instead of running the tests; see startHolder.
const holderEnv = "WATCH_EXAMPLE_HOLDER"

func TestMain(m *testing.M) {
	if nodes := os.Getenv(holderEnv); nodes != "" {
		holder(nodes, os.Getenv(holderEnv+"_NAME"))
		return
	}
	goleak.VerifyTestMain(m)
}

// holder is the child process of startHolder: it takes the lock with a
// short TTL, says "acquired", and holds it (renewing it) until its stdin
// closes or it is killed.
func holder(nodes, name string) {
	c, err := distlock.New(distlock.Config{Nodes: strings.Split(nodes, ",")})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Acquire(ctx, name, distlock.WithTTL(time.Second)); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("acquired")
	io.Copy(io.Discard, os.Stdin)
}

// startHolder runs this test binary again as a process that holds the lock
// name on masters, and returns it once it holds the lock. The process is
// killed when the test ends, if it has not been already.
func startHolder(t *testing.T, masters []*redistest.Server, name string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		holderEnv+"="+strings.Join(redistest.URLs(masters), ","),
		holderEnv+"_NAME="+name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "acquired" {
		t.Fatalf("holder process: got %q; want acquired", out.Text())
	}
	return cmd
}

// syncBuffer is a bytes.Buffer that run writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the complete lines written so far.
func (b *syncBuffer) lines() []string {
	s := b.String()
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return nil
	}
	return strings.Split(s[:i], "\n")
}

// eventLine matches one event line; the submatch is the event's type.
var eventLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} (\S+) (acquired|released|expired) \(masters [23]\)$`)

// watchRun runs run on masters for the lock name in a goroutine and waits
// until it is watching. Cancel the returned function to stop it; wait
// reports run's error, failing the test if it does not return promptly.
func watchRun(t *testing.T, masters []*redistest.Server, name string) (out *syncBuffer, stop func() error) {
	t.Helper()
	out = new(syncBuffer)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, redistest.URLs(masters), name, out) }()
	stopped := false
	stop = func() error {
		t.Helper()
		cancel()
		if stopped {
			return nil
		}
		stopped = true
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("run did not return within 5s of ctx's end; output:\n%s", out)
		}
		return nil
	}
	t.Cleanup(func() { stop() })
	waitLine(t, out, regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} `+regexp.QuoteMeta(name)+` watching \(Ctrl-C to stop\)$`), 1, done)
	return out, stop
}

// waitLine waits until out has n lines matching re, failing the test
// after 5 seconds, or at once if run returns (done).
func waitLine(t *testing.T, out *syncBuffer, re *regexp.Regexp, n int, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := 0
		for _, l := range out.lines() {
			if re.MatchString(l) {
				got++
			}
		}
		if got >= n {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v while waiting for %d lines matching %s; output:\n%s", err, n, re, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %d lines match %s, want %d; output:\n%s", got, re, n, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventTypes returns the types of the event lines of out, in order, and
// fails the test on a line that is neither the first "watching" line nor
// an event of name.
func eventTypes(t *testing.T, out *syncBuffer, name string) []string {
	t.Helper()
	lines := out.lines()
	var types []string
	for i, l := range lines {
		if i == 0 && strings.HasSuffix(l, " watching (Ctrl-C to stop)") {
			continue
		}
		m := eventLine.FindStringSubmatch(l)
		if m == nil || m[1] != name {
			t.Errorf("line %d = %q; want \"HH:MM:SS.mmm %s TYPE (masters N)\"", i+1, l, name)
			continue
		}
		types = append(types, m[2])
	}
	return types
}

// TestRun watches the lock while another Client takes and releases it
// twice, on three masters of its own (never the Redis on port 6379).
func TestRun(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})
	out, stop := watchRun(t, masters, defaultName)

	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(masters)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 1; i <= 2; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		l, err := c.Acquire(ctx, defaultName)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// Wait for each event before the next change: a key set and
		// deleted before the watcher reads it is a change it never sees.
		waitLine(t, out, regexp.MustCompile(` acquired \(`), i, nil)
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitLine(t, out, regexp.MustCompile(` released \(`), i, nil)
	}

	if err := stop(); err != nil {
		t.Errorf("run after ctx ended: got %v; want nil", err)
	}
	want := []string{"acquired", "released", "acquired", "released"}
	if got := eventTypes(t, out, defaultName); !slices.Equal(got, want) {
		t.Errorf("events: got %q; want %q; output:\n%s", got, want, out)
	}
}

// TestRunExpired watches a lock whose holder, another process, is killed
// while holding it: the lock expires after the holder's 1 s TTL.
func TestRunExpired(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})
	const name = "examples/watch-expired"
	out, stop := watchRun(t, masters, name)

	cmd := startHolder(t, masters, name)
	waitLine(t, out, regexp.MustCompile(` acquired \(`), 1, nil)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no release
		t.Fatal(err)
	}
	cmd.Wait()
	waitLine(t, out, regexp.MustCompile(` expired \(`), 1, nil)

	if err := stop(); err != nil {
		t.Errorf("run after ctx ended: got %v; want nil", err)
	}
	want := []string{"acquired", "expired"}
	if got := eventTypes(t, out, name); !slices.Equal(got, want) {
		t.Errorf("events: got %q; want %q; output:\n%s", got, want, out)
	}
}

// TestRunInitial starts watching a lock that is already held: the first
// event says so.
func TestRunInitial(t *testing.T) {
	masters := redistest.StartN(t, 3, redistest.Options{})
	c, err := distlock.New(distlock.Config{Nodes: redistest.URLs(masters)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.Acquire(t.Context(), defaultName)
	if err != nil {
		t.Fatal(err)
	}
	out, stop := watchRun(t, masters, defaultName)
	waitLine(t, out, regexp.MustCompile(` acquired \(masters [23], already held when the watch began\)$`), 1, nil)
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitLine(t, out, regexp.MustCompile(` released \(masters [23]\)$`), 1, nil)
	if err := stop(); err != nil {
		t.Errorf("run after ctx ended: got %v; want nil", err)
	}
}

func TestFormat(t *testing.T) {
	at := time.Date(2025, 1, 2, 15, 4, 5, 6e6, time.UTC)
	for _, tc := range []struct {
		ev   distlock.Event
		want string
	}{
		{distlock.Event{Name: "job", Type: distlock.EventAcquired, Time: at, Masters: 3},
			"15:04:05.006 job acquired (masters 3)"},
		{distlock.Event{Name: "job", Type: distlock.EventReleased, Time: at, Masters: 2},
			"15:04:05.006 job released (masters 2)"},
		{distlock.Event{Name: "job", Type: distlock.EventExpired, Time: at, Masters: 3, Missed: 4},
			"15:04:05.006 job expired (masters 3, 4 events missed before this one)"},
		{distlock.Event{Name: "job", Type: distlock.EventAcquired, Time: at, Masters: 2, Initial: true},
			"15:04:05.006 job acquired (masters 2, already held when the watch began)"},
	} {
		if got := format(tc.ev); got != tc.want {
			t.Errorf("format(%+v) = %q; want %q", tc.ev, got, tc.want)
		}
	}
}

func TestSplitNodes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"redis://a:6379/0", []string{"redis://a:6379/0"}},
		{"a:1, b:2 ,,c:3", []string{"a:1", "b:2", "c:3"}},
	} {
		if got := splitNodes(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitNodes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
