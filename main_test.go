package distlock_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv("DISTLOCK_HOLDER") != "" {
		holder() // this binary runs as a lock holder for a test; see startHolder
		return
	}
	// rueidis's Cluster client closes the connections a refresh of the
	// slots' map dropped 5 s later, and runs a refresh asked for after a
	// MOVED or TRYAGAIN up to a second later (singleflight.go, DelayDo),
	// in goroutines that Close does not end (cluster_test.go,
	// replicas_test.go): not distlock's, and each ends by itself.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

// startHolder runs this test binary again as a separate process that holds
// the lock name with ttl on servers, and returns once it holds it. Write a
// line to its stdin to have it print "err: " and its lease's Err. The
// process is killed when the test ends.
func startHolder(t *testing.T, servers []*redistest.Server, name string, ttl time.Duration) (cmd *exec.Cmd, stdin io.WriteCloser, out *bufio.Scanner) {
	t.Helper()
	return startChild(t, servers, name, "acquired", "DISTLOCK_HOLDER_TTL="+ttl.String())
}

// startWaiter runs this test binary again as a separate process whose
// Client waits for the lock name (RetryMaxDelay 50ms, so its place in
// master 0's waiting list lapses 1s after its last attempt), and returns
// once it has started waiting. The process is killed when the test ends.
func startWaiter(t *testing.T, servers []*redistest.Server, name string) *exec.Cmd {
	t.Helper()
	cmd, _, _ := startChild(t, servers, name, "waiting", "DISTLOCK_HOLDER_WAITS=1")
	return cmd
}

// startChild runs the child process of startHolder and startWaiter and
// waits for its first line, which must be first.
func startChild(t *testing.T, servers []*redistest.Server, name, first string, env ...string) (cmd *exec.Cmd, stdin io.WriteCloser, out *bufio.Scanner) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"DISTLOCK_HOLDER="+strings.Join(redistest.URLs(servers), ","),
		"DISTLOCK_HOLDER_NAME="+name)
	cmd.Env = append(cmd.Env, env...)
	stdin, _ = cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	out = bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != first {
		t.Fatalf("child process: got %q; want %s", out.Text(), first)
	}
	return cmd, stdin, out
}

// holder is the child process of startHolder and startWaiter: it takes the
// lock (printing "waiting" first, as a waiter) and holds it until killed.
func holder() {
	cfg := distlock.Config{Nodes: strings.Split(os.Getenv("DISTLOCK_HOLDER"), ",")}
	waits := os.Getenv("DISTLOCK_HOLDER_WAITS") != ""
	if waits {
		cfg.RetryMinDelay, cfg.RetryMaxDelay = 10*time.Millisecond, 50*time.Millisecond
	}
	var opts []distlock.Option
	if ttl, err := time.ParseDuration(os.Getenv("DISTLOCK_HOLDER_TTL")); err == nil {
		opts = append(opts, distlock.WithTTL(ttl))
	}
	c, err := distlock.New(cfg)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer c.Close()
	if waits {
		fmt.Println("waiting")
	}
	l, err := c.Acquire(context.Background(), os.Getenv("DISTLOCK_HOLDER_NAME"), opts...)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("acquired")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println("err:", l.Err())
	}
}

// masters starts n real redis-server processes for the test.
func masters(t *testing.T, n int) []*redistest.Server {
	t.Helper()
	return redistest.StartN(t, n, redistest.Options{})
}

// newClient returns a Client over servers (over cfg.Nodes when servers is
// nil), closed when the test ends.
func newClient(t *testing.T, servers []*redistest.Server, cfg distlock.Config) *distlock.Client {
	t.Helper()
	if servers != nil {
		cfg.Nodes = redistest.URLs(servers)
	}
	c, err := distlock.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// lockKeys returns the lock keys (not fence counters) on a server.
func lockKeys(t *testing.T, s *redistest.Server) []string {
	t.Helper()
	out, err := s.Do("KEYS", "distlock:*")
	if err != nil {
		t.Fatalf("KEYS on %s: %v", s.Addr(), err)
	}
	var keys []string
	for _, k := range strings.Split(out, "\n") {
		if k != "" && !strings.HasPrefix(k, "distlock:fence:") {
			keys = append(keys, k)
		}
	}
	return keys
}

// heldEverywhere waits until name's lock key exists on every server.
// Acquire returns at a majority: a test that then faults, reads or writes
// one master must wait for the straggler's acquire to land there first.
func heldEverywhere(t *testing.T, servers []*redistest.Server, name string) {
	t.Helper()
	for _, s := range servers {
		eventually(t, "the lock key on "+s.Addr(), func() bool {
			n, err := s.Do("EXISTS", "distlock:"+name)
			if err != nil {
				t.Fatalf("EXISTS on %s: %v", s.Addr(), err)
			}
			return n == "1"
		})
	}
}

// noLockKeys fails the test if any server still has a lock key, waiting
// briefly for clean-ups that run in the background.
func noLockKeys(t *testing.T, servers []*redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, s := range servers {
		for {
			keys := lockKeys(t, s)
			if len(keys) == 0 {
				break
			}
			if time.Now().After(deadline) {
				var detail []string
				for _, k := range keys {
					v, _ := s.Do("GET", k)
					pttl, _ := s.Do("PTTL", k)
					detail = append(detail, fmt.Sprintf("%s=%q (PTTL %s ms)", k, v, pttl))
				}
				t.Fatalf("lock keys left on %s: got %v; want none", s.Addr(), detail)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// scriptSHA is the SHA1 of internal/script/NAME.lua: what EVALSHA sends, for
// a LateDialer pattern.
func scriptSHA(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile("internal/script/" + name + ".lua")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(src)
	return hex.EncodeToString(sum[:])
}

// eventually fails the test unless cond becomes true within 2 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 2s: want %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func redistest0(servers []*redistest.Server) []string { return redistest.URLs(servers) }

// acquireAsync runs c.Acquire(ctx, name, opts...) on a goroutine and sends
// its lease (nil after an error, which fails the test) on the channel it
// returns.
func acquireAsync(t *testing.T, ctx context.Context, c *distlock.Client, name string, opts ...distlock.Option) <-chan *distlock.Lease {
	t.Helper()
	got := make(chan *distlock.Lease, 1)
	go func() {
		l, err := c.Acquire(ctx, name, opts...)
		if err != nil {
			t.Errorf("Acquire %q: %v", name, err)
		}
		got <- l
	}()
	return got
}
