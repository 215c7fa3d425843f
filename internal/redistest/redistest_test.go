package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain checks, after all tests, that no goroutine started by this
// package outlived Stop. (goleak would do this, but the package must not
// add dependencies.)
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(2 * time.Second)
		for {
			leaked := leakedGoroutines()
			if leaked == "" {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
				code = 1
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines, other than the
// caller's, that run or were created by code in this package.
func leakedGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the calling goroutine
			continue
		}
		if strings.Contains(g, "/internal/redistest.") {
			leaked = append(leaked, g)
		}
	}
	return strings.Join(leaked, "\n\n")
}

// mustDo runs a command that the test expects to succeed.
func mustDo(t *testing.T, s *Server, args ...string) string {
	t.Helper()
	got, err := s.Do(args...)
	if err != nil {
		t.Fatalf("Do(%q) on %s: got error %v; want nil", args, s.Addr(), err)
	}
	return got
}

// wantGet checks the value of key, "" meaning missing.
func wantGet(t *testing.T, s *Server, key, want string) {
	t.Helper()
	if got := mustDo(t, s, "GET", key); got != want {
		t.Errorf("GET %s on %s: got %q; want %q", key, s.Addr(), got, want)
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	servers := StartN(t, 2, Options{})
	a, b := servers[0], servers[1]

	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s; want distinct addresses", a.Addr())
	}
	for _, s := range servers {
		if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
			t.Errorf("Addr() = %q; want prefix 127.0.0.1:", s.Addr())
		}
		if got, want := s.URL(), "redis://"+s.Addr()+"/0"; got != want {
			t.Errorf("URL() = %q; want %q", got, want)
		}
	}
	if got := URLs(servers); len(got) != 2 || got[0] != a.URL() || got[1] != b.URL() {
		t.Errorf("URLs = %q; want [%q %q]", got, a.URL(), b.URL())
	}

	if got := mustDo(t, a, "SET", "k", "on a"); got != "OK" {
		t.Errorf("SET: got %q; want %q", got, "OK")
	}
	mustDo(t, b, "SET", "k", "on b")
	wantGet(t, a, "k", "on a")
	wantGet(t, b, "k", "on b")
	wantGet(t, a, "missing", "")

	// Values with RESP's delimiters must round-trip as bulk strings.
	mustDo(t, a, "SET", "crlf", "x\r\ny")
	wantGet(t, a, "crlf", "x\r\ny")

	if got := mustDo(t, a, "INCR", "n"); got != "1" {
		t.Errorf("INCR: got %q; want %q", got, "1")
	}
	mustDo(t, a, "RPUSH", "list", "x", "y", "z")
	if got := mustDo(t, a, "LRANGE", "list", "0", "-1"); got != "x\ny\nz" {
		t.Errorf("LRANGE: got %q; want %q", got, "x\ny\nz")
	}
	if got := mustDo(t, a, "PTTL", "k"); got != "-1" {
		t.Errorf("PTTL: got %q; want %q", got, "-1")
	}
	if _, err := a.Do("GET", "list"); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("GET on a list: got error %v; want WRONGTYPE", err)
	}
	if _, err := a.Do(); err == nil {
		t.Errorf("Do(): got nil error; want an error")
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{})[0]
	mustDo(t, s, "SET", "k", "v")

	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: got %v; want nil", err)
	}
	start := time.Now()
	_, err := s.Do("PING")
	if err == nil {
		t.Fatalf("Do(PING) on a paused server: got nil error; want a timeout")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Do(PING) on a paused server: got %v; want a timeout", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Do on a paused server took %v; want about %v", d, doTimeout)
	}

	if err := s.Resume(); err != nil {
		t.Fatalf("Resume: got %v; want nil", err)
	}
	if err := s.Resume(); err != nil {
		t.Errorf("second Resume: got %v; want nil", err)
	}
	wantGet(t, s, "k", "v")
}

func TestKill(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{})[0]
	mustDo(t, s, "PING")

	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: got %v; want nil", err)
	}
	if _, err := s.Do("PING"); err == nil {
		t.Errorf("Do(PING) after Kill: got nil error; want an error")
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill: got %v; want nil", err)
	}
	if err := s.Pause(); err == nil {
		t.Errorf("Pause after Kill: got nil error; want an error")
	}
	if err := s.Resume(); err == nil {
		t.Errorf("Resume after Kill: got nil error; want an error")
	}
}

func TestKillPaused(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{})[0]
	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: got %v; want nil", err)
	}
	// Restart must kill a paused server without hanging, then serve again.
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart of a paused server: got %v; want nil", err)
	}
	if got := mustDo(t, s, "PING"); got != "PONG" {
		t.Errorf("PING after Restart: got %q; want %q", got, "PONG")
	}
}

func TestRestartNotPersistent(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{})[0]
	addr := s.Addr()
	mustDo(t, s, "SET", "k", "v")

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: got %v; want nil", err)
	}
	if s.Addr() != addr {
		t.Errorf("Addr after Restart: got %s; want %s", s.Addr(), addr)
	}
	wantGet(t, s, "k", "")
}

func TestRestartPersistent(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{Persistent: true})[0]
	mustDo(t, s, "SET", "k", "v")

	// Kill first: the write must survive a crash, not just a clean restart.
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: got %v; want nil", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: got %v; want nil", err)
	}
	wantGet(t, s, "k", "v")

	if err := s.RestartEmpty(); err != nil {
		t.Fatalf("RestartEmpty: got %v; want nil", err)
	}
	wantGet(t, s, "k", "")
	if got := mustDo(t, s, "CONFIG", "GET", "appendonly"); got != "appendonly\nyes" {
		t.Errorf("CONFIG GET appendonly after RestartEmpty: got %q; want %q", got, "appendonly\nyes")
	}
}

func TestRestartWaitsForPort(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{})[0]
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: got %v; want nil", err)
	}
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("occupying %s: %v", s.Addr(), err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(300 * time.Millisecond)
		l.Close()
	}()
	defer func() { <-released }()

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart while the port is briefly taken: got %v; want nil", err)
	}
	if got := mustDo(t, s, "PING"); got != "PONG" {
		t.Errorf("PING after Restart: got %q; want %q", got, "PONG")
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{Args: []string{"--requirepass", "sesame"}})[0]
	// Do authenticates with the password from Args...
	mustDo(t, s, "SET", "k", "v")
	wantGet(t, s, "k", "v")

	// ...and the server really requires it.
	conn, err := net.DialTimeout("tcp", s.Addr(), doTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(doTimeout))
	if _, err := conn.Write(appendCommand(nil, "GET", "k")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := readReply(bufio.NewReader(conn)); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("GET without AUTH: got error %v; want NOAUTH", err)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Persistent: true})
	if err != nil {
		t.Fatalf("Start: got %v; want nil", err)
	}
	mustDo(t, s, "SET", "k", "v")
	if _, err := os.Stat(s.dir); err != nil {
		t.Fatalf("stat %s before Stop: got %v; want nil", s.dir, err)
	}

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: got %v; want nil", err)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("stat %s after Stop: got %v; want not exist", s.dir, err)
	}
	if _, err := s.Do("PING"); err == nil {
		t.Errorf("Do(PING) after Stop: got nil error; want an error")
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: got %v; want nil", err)
	}
	if err := s.Restart(); err == nil {
		t.Errorf("Restart after Stop: got nil error; want an error")
	}
}

func TestStartBadArgs(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Args: []string{"--no-such-option", "1"}})
	if err == nil {
		s.Stop()
		t.Fatalf("Start with a bad option: got nil error; want an error")
	}
	// The error must carry redis-server's own explanation.
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("Start with a bad option: got %v; want it to quote the output", err)
	}
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "+OK\r\n", want: "OK"},
		{in: ":-42\r\n", want: "-42"},
		{in: "$5\r\nhello\r\n", want: "hello"},
		{in: "$0\r\n\r\n", want: ""},
		{in: "$-1\r\n", want: ""},
		{in: "*-1\r\n", want: ""},
		{in: "*0\r\n", want: ""},
		{in: "*3\r\n$1\r\na\r\n$-1\r\n:7\r\n", want: "a\n\n7"},
		{in: "*2\r\n*2\r\n+a\r\n+b\r\n+c\r\n", want: "a\nb\nc"},
		{in: "-ERR bad\r\n", wantErr: "ERR bad"},
		{in: "*2\r\n-ERR first\r\n-ERR second\r\n", wantErr: "ERR first"},
		{in: "$3\r\nab", wantErr: "EOF"},
		{in: "$2\r\nabcd\r\n", wantErr: "CRLF"},
		{in: ":x\r\n", wantErr: "malformed"},
		{in: "%1\r\n", wantErr: "unsupported"},
		{in: "+OK\n", wantErr: "malformed"},
	}
	for _, tt := range tests {
		got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("readReply(%q): got (%q, %v); want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("readReply(%q): got (%q, %v); want (%q, nil)", tt.in, got, err, tt.want)
		}
	}
}

func TestAppendCommand(t *testing.T) {
	t.Parallel()
	got := string(appendCommand(nil, "SET", "k", ""))
	want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
	if got != want {
		t.Errorf("appendCommand: got %q; want %q", got, want)
	}
}

// fakeTB records how StartN gives up instead of failing the real test.
// Skip is recorded too, so that a StartN that skips cannot pass unnoticed.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Cleanup(fn func())         { fn() }
func (f *fakeTB) Fatal(args ...any)         { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(s string, a ...any) { f.fatal = fmt.Sprintf(s, a...); runtime.Goexit() }
func (f *fakeTB) Skip(args ...any)          { f.fatal = "skipped"; runtime.Goexit() }
func (f *fakeTB) Skipf(s string, a ...any)  { f.fatal = "skipped"; runtime.Goexit() }
func (f *fakeTB) SkipNow()                  { f.fatal = "skipped"; runtime.Goexit() }

// TestMissingRedis is not parallel: it changes PATH for the process.
func TestMissingRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	const want = "redis-server not found in PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"

	if _, err := LookPath(); err == nil || err.Error() != want {
		t.Errorf("LookPath: got %v; want %q", err, want)
	}
	if _, err := Start(Options{}); err == nil || err.Error() != want {
		t.Errorf("Start: got %v; want %q", err, want)
	}

	// StartN must fail, not skip, with LookPath's message.
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartN(f, 1, Options{})
	}()
	<-done
	if f.fatal != want {
		t.Errorf("StartN Fatal message: got %q; want %q", f.fatal, want)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	files, err := NewTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := StartN(t, 1, Options{TLS: files, Persistent: true})[0]
	if got := s.URL(); !strings.HasPrefix(got, "rediss://") {
		t.Errorf("URL: got %q; want rediss://...", got)
	}
	mustDo(t, s, "SET", "k", "v")
	// The port speaks TLS only: a plain-text PING gets no PONG.
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	conn.Write([]byte("PING\r\n"))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); strings.Contains(line, "PONG") {
		t.Errorf("plain-text PING on the TLS port: got %q; want no answer", line)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := mustDo(t, s, "GET", "k"); got != "v" {
		t.Errorf("GET after Restart: got %q; want v", got)
	}
}

func TestACLUser(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{User: "alice", Password: "s3cret"})[0]
	if got, want := s.URL(), "redis://alice:s3cret@"+s.Addr()+"/0"; got != want {
		t.Errorf("URL: got %q; want %q", got, want)
	}
	if got := mustDo(t, s, "ACL", "WHOAMI"); got != "alice" {
		t.Errorf("ACL WHOAMI: got %q; want alice", got)
	}
	// The default user is off: without AUTH, commands are refused.
	anon := &Server{addr: s.Addr()}
	if _, err := anon.Do("PING"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without AUTH: got %v; want a NOAUTH error", err)
	}
}

// With Rules, the user may do only what they allow, and Do, as AdminUser,
// anything.
func TestACLRules(t *testing.T) {
	t.Parallel()
	s := StartN(t, 1, Options{User: "bob", Password: "s3cret", Rules: []string{"resetkeys", "-@all", "+get", "+ping", "+hello", "~app:*"}})[0]
	if got := mustDo(t, s, "ACL", "WHOAMI"); got != AdminUser {
		t.Errorf("ACL WHOAMI through Do: got %q; want %s", got, AdminUser)
	}
	if got := mustDo(t, s, "ACL", "DRYRUN", "bob", "GET", "app:x"); got != "OK" {
		t.Errorf("ACL DRYRUN bob GET app:x: got %q; want OK", got)
	}
	if got := mustDo(t, s, "ACL", "DRYRUN", "bob", "SET", "app:x", "1"); !strings.Contains(got, "no permissions") {
		t.Errorf("ACL DRYRUN bob SET app:x: got %q; want refused", got)
	}
	if got := mustDo(t, s, "ACL", "DRYRUN", "bob", "GET", "other"); !strings.Contains(got, "no permissions") {
		t.Errorf("ACL DRYRUN bob GET other: got %q; want refused", got)
	}
	if got, want := s.URL(), "redis://bob:s3cret@"+s.Addr()+"/0"; got != want {
		t.Errorf("URL: got %q; want %q", got, want)
	}
}
