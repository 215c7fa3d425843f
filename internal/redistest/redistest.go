// Package redistest starts real redis-server processes on free loopback
// ports so that tests and demo programs can exercise the lock against
// genuine Redis behaviour, including crashes (Kill), network stalls (Pause)
// and masters that come back with or without their data (Restart,
// RestartEmpty).
//
// The core type, Server, serves the demo program too, so the package does
// not import package testing (a binary that linked it would carry it):
// StartN and ProxyN take a TB, which *testing.T and *testing.B satisfy.
//
// Only the standard library is used, so importing this package adds no
// dependencies to the module.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// startTimeout bounds how long Start and Restart wait for a freshly
	// launched server to answer PING.
	startTimeout = 10 * time.Second
	// startAttempts is how many fresh ports Start tries. Picking a port by
	// listening on :0 and closing the listener is inherently racy (another
	// process, or a parallel Start, may grab it before redis-server binds),
	// so a bind failure is retried with a new port.
	startAttempts = 5
	// rebindTimeout bounds how long Restart retries binding its old port,
	// which it must keep because clients were configured with that address.
	rebindTimeout = 5 * time.Second
	// doTimeout is the deadline for a whole Do exchange. It is what makes
	// Do fail, rather than hang, against a paused server.
	doTimeout = 2 * time.Second
	// pollInterval is the delay between readiness probes.
	pollInterval = 10 * time.Millisecond
	// logName and outName are the files, inside the server's directory,
	// that receive redis-server's log and its stdout/stderr. The latter
	// matters because configuration errors are printed before the log
	// file is opened.
	logName = "redis.log"
	outName = "redis.out"
	// logTailLines is how much of the log a startup error quotes.
	logTailLines = 20
)

// errAddrInUse reports that redis-server exited because its port was taken.
var errAddrInUse = errors.New("address already in use")

// Options configures a server.
type Options struct {
	// Persistent makes the server write every command to its append-only
	// file and fsync it before replying (appendonly yes, appendfsync
	// always), so that data survives Kill followed by Restart. Otherwise
	// the server keeps data only in memory (--save "" --appendonly no) and
	// every restart starts empty.
	Persistent bool

	// Args holds extra redis-server arguments appended to the command
	// line, for example "--requirepass", "secret". They must not change
	// --port, --bind, --dir or --logfile, which the harness relies on.
	// If Args sets --requirepass, Do and the readiness probe authenticate
	// with that password.
	Args []string

	// TLS, when set, makes the server accept TLS connections only: its
	// port is a --tls-port and the plain --port is 0. Clients need not
	// present a certificate. URL then starts with rediss://, and Do
	// connects over TLS, trusting TLS.RootCAs.
	TLS *TLSFiles

	// User and Password, when User is set, create an ACL user with every
	// permission and that password, and disable the default user, so
	// that a client must AUTH as User. URL then carries the credentials,
	// and Do authenticates with them.
	User     string
	Password string

	// Rules, when not nil and User is set, are the user's ACL rules in
	// place of every permission ("~*", "&*", "+@all"): for example
	// "-@all", "+get", "~app:*", as on an ACL SETUSER line. Do and the
	// readiness probe then authenticate as AdminUser, a second user with
	// every permission, so that a test can inspect and change the server
	// whatever User may do (ACL SETUSER User ... changes User's rules).
	Rules []string
}

// AdminUser is the user with every permission that Do authenticates as
// when Options.Rules restrict Options.User.
const AdminUser = "redistest-admin"

// adminPassword is AdminUser's password.
const adminPassword = "redistest-admin-password"

// A Server is a redis-server process listening on 127.0.0.1, with its own
// temporary directory. The zero value is not usable; call Start.
//
// Its methods are safe for concurrent use. Lifecycle methods (Kill, Pause,
// Resume, Restart, RestartEmpty, Stop) are serialized; Do, Addr and URL
// never block on them.
type Server struct {
	// Immutable after Start returns: Restart deliberately reuses the same
	// port and directory, so these can be read without locking.
	path     string // redis-server executable
	opts     Options
	dir      string // temporary directory: data files and logs
	port     int
	addr     string // "127.0.0.1:port"
	password string // from --requirepass in opts.Args, used by Do

	// mu guards the process state below and serializes lifecycle
	// operations, so that, for example, a Kill racing a Restart cannot
	// signal a process the other is about to replace.
	mu      sync.Mutex
	cmd     *exec.Cmd     // current process; nil before the first launch
	done    chan struct{} // closed by the reaper goroutine when cmd exits
	paused  bool          // cmd was sent SIGSTOP and not yet SIGCONT
	stopped bool          // Stop was called; the directory is gone
}

// LookPath returns the path of the redis-server executable. If it is not
// in PATH, the error says so and explains how to install it, because that
// is the most likely reason for tests to fail on a fresh machine.
func LookPath() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found in PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)")
	}
	return p, nil
}

// Start launches a redis-server in a new temporary directory on a free
// port of 127.0.0.1 and waits until it answers PING. On failure nothing is
// left behind: the process is killed and the directory removed.
//
// The caller must call Stop to remove the directory. If the caller dies
// first the server is killed with it (on Linux), but the directory leaks.
func Start(opts Options) (*Server, error) {
	path, err := LookPath()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	s := &Server{
		path:     path,
		opts:     opts,
		dir:      dir,
		password: passwordFrom(opts.Args),
	}
	s.opts.Args = append([]string(nil), opts.Args...)
	if opts.User != "" {
		s.password = opts.Password
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err == nil {
			s.port = port
			s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			err = s.launch()
		}
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// freePort asks the kernel for an unused port on 127.0.0.1. The port is
// free only at the moment the listener closes; see startAttempts.
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("redistest: finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// Never hand out the default Redis port: a developer's own
		// server may be expected there, and tests must not touch it.
		if port != 6379 {
			return port, nil
		}
	}
}

// passwordFrom returns the value of the last --requirepass in args.
func passwordFrom(args []string) string {
	pw := ""
	for i := 0; i+1 < len(args); i++ {
		if strings.EqualFold(args[i], "--requirepass") {
			pw = args[i+1]
		}
	}
	return pw
}

// Addr returns the server's address, "127.0.0.1:PORT". It stays the same
// across Restart.
func (s *Server) Addr() string { return s.addr }

// URL returns the server's address as a redis:// URL selecting database 0,
// the form accepted by most Redis clients: rediss:// when the server
// speaks TLS, and with user and password when Options.User is set.
func (s *Server) URL() string {
	scheme := "redis://"
	if s.opts.TLS != nil {
		scheme = "rediss://"
	}
	if s.opts.User != "" {
		u := url.UserPassword(s.opts.User, s.opts.Password)
		return scheme + u.String() + "@" + s.addr + "/0"
	}
	return scheme + s.addr + "/0"
}

// args returns the redis-server command line. Persistence is chosen
// explicitly rather than inherited from a system redis.conf so that tests
// behave the same on every machine; noeviction keeps the server from
// silently dropping lock keys under memory pressure.
func (s *Server) args() []string {
	a := []string{"--port", strconv.Itoa(s.port)}
	if t := s.opts.TLS; t != nil {
		a = []string{
			"--port", "0",
			"--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", t.CertFile,
			"--tls-key-file", t.KeyFile,
			"--tls-ca-cert-file", t.CAFile,
			"--tls-auth-clients", "no",
		}
	}
	a = append(a,
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, logName),
		"--daemonize", "no",
		"--save", "",
	)
	if s.opts.User != "" {
		// Each word after an option is one argument of its config line.
		rules := s.opts.Rules
		if rules == nil {
			rules = []string{"~*", "&*", "+@all"}
		} else {
			a = append(a, "--user", AdminUser, "on", ">"+adminPassword, "~*", "&*", "+@all")
		}
		a = append(a, "--user", "default", "off", "--user", s.opts.User, "on", ">"+s.opts.Password)
		a = append(a, rules...)
	}
	if s.opts.Persistent {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	a = append(a, "--maxmemory-policy", "noeviction")
	return append(a, s.opts.Args...)
}

// launch starts redis-server on s.port and waits until it is ready. It
// returns an error wrapping errAddrInUse if the process exited because the
// port was taken. On any error the process has been reaped.
//
// The caller must hold s.mu, or own s exclusively (as Start does).
func (s *Server) launch() error {
	logPath := filepath.Join(s.dir, logName)
	// Remember where this run's log starts: the log file is shared by all
	// runs, and only this run's lines say why it failed.
	var logOffset int64
	if fi, err := os.Stat(logPath); err == nil {
		logOffset = fi.Size()
	}
	// stdout/stderr go to a file rather than a pipe: an *os.File needs no
	// copying goroutine, and a pipe could keep Wait blocked if redis ever
	// forked a child that inherited it.
	out, err := os.Create(filepath.Join(s.dir, outName))
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(s.path, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	out.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("redistest: starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		// Reap the process as soon as it exits, so that it never lingers
		// as a zombie and done tells everyone whether it is running.
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.paused = cmd, done, false

	if err := s.waitReady(cmd.Process.Pid, done); err != nil {
		killGroup(cmd.Process)
		<-done
		log := s.logTail(logPath, logOffset)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("redistest: redis-server on %s: %w", s.addr, errAddrInUse)
		}
		return fmt.Errorf("redistest: redis-server on %s: %v; log:\n%s", s.addr, err, log)
	}
	return nil
}

// waitReady polls the server until it answers PING and proves to be the
// process with the given pid. The pid check matters because, if our
// process lost the race for the port, another test's server may be the
// one answering on it.
func (s *Server) waitReady(pid int, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	var lastErr error
	for {
		select {
		case <-done:
			return errors.New("exited during startup")
		default:
		}
		// PING, unlike INFO, fails with -LOADING while the append-only
		// file is being replayed, so a PONG means data is available.
		reply, err := s.Do("PING")
		if err == nil && reply != "PONG" {
			err = fmt.Errorf("PING replied %q", reply)
		}
		if err == nil {
			reply, err = s.Do("INFO", "server")
			if err == nil && !strings.Contains(reply, want) {
				err = fmt.Errorf("another process answers on %s", s.addr)
			}
		}
		if err == nil {
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING after %v (last error: %v)", startTimeout, lastErr)
		}
		time.Sleep(pollInterval)
	}
}

// logTail returns the last lines of the log written since offset, followed
// by anything the process printed to stdout/stderr.
func (s *Server) logTail(logPath string, offset int64) string {
	var parts []string
	if data, err := os.ReadFile(logPath); err == nil && int64(len(data)) >= offset {
		if log := strings.TrimSpace(string(data[offset:])); log != "" {
			lines := strings.Split(log, "\n")
			if len(lines) > logTailLines {
				lines = lines[len(lines)-logTailLines:]
			}
			parts = append(parts, strings.Join(lines, "\n"))
		}
	}
	if data, err := os.ReadFile(filepath.Join(s.dir, outName)); err == nil {
		if out := strings.TrimSpace(string(data)); out != "" {
			parts = append(parts, "stdout/stderr:\n"+out)
		}
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, "\n")
}

// running reports whether the current process is alive. s.mu must be held.
func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill kills the server with SIGKILL, as a crash or power loss would, and
// waits for the process to be reaped. Killing a server that is not running
// does nothing. A paused server is resumed first so that it never lingers
// in the stopped state.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kill()
}

// kill implements Kill. s.mu must be held.
func (s *Server) kill() error {
	if !s.running() {
		s.paused = false
		return nil
	}
	if s.paused {
		contGroup(s.cmd.Process)
		s.paused = false
	}
	// An error here means the process is already exiting on its own; the
	// wait below covers that case too.
	killGroup(s.cmd.Process)
	<-s.done
	return nil
}

// Pause freezes the server with SIGSTOP. Its port keeps accepting
// connections, which the kernel queues, but nothing is answered: to a
// client this looks like a network partition or a long GC pause, so
// requests time out instead of failing fast.
func (s *Server) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return s.notRunning("pause")
	}
	if err := stopGroup(s.cmd.Process); err != nil {
		return fmt.Errorf("redistest: pausing %s: %w", s.addr, err)
	}
	s.paused = true
	return nil
}

// Resume lets a paused server continue with SIGCONT. Resuming a server
// that is running but not paused does nothing.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return s.notRunning("resume")
	}
	if !s.paused {
		return nil
	}
	if err := contGroup(s.cmd.Process); err != nil {
		return fmt.Errorf("redistest: resuming %s: %w", s.addr, err)
	}
	s.paused = false
	return nil
}

// notRunning returns the error for an operation that needs a live process.
func (s *Server) notRunning(op string) error {
	if s.stopped {
		return fmt.Errorf("redistest: cannot %s %s: server stopped", op, s.addr)
	}
	return fmt.Errorf("redistest: cannot %s %s: server not running", op, s.addr)
}

// Restart kills the server if it is running and starts it again on the
// same address, directory and options, then waits until it answers PING.
// The data survives only if the server is Persistent, which is how a
// Redis master with appendfsync always behaves after a crash.
//
// If the port is briefly in use, Restart retries for a few seconds; it
// cannot move to another port because clients know the old address.
func (s *Server) Restart() error {
	return s.restart(false)
}

// RestartEmpty is like Restart but deletes the data files (the append-only
// directory, dump.rdb and anything else except the logs) before starting,
// so the server comes back with no keys: a master that lost everything,
// the case Redlock's delayed-restart advice is about.
func (s *Server) RestartEmpty() error {
	return s.restart(true)
}

func (s *Server) restart(empty bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.notRunning("restart")
	}
	if err := s.kill(); err != nil {
		return err
	}
	if empty {
		if err := s.removeData(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(rebindTimeout)
	for {
		err := s.launch()
		if err == nil || !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeData deletes everything in the directory except the log files.
// Deleting by exclusion, rather than by name, also catches data files
// renamed through Args (--appenddirname, --dbfilename).
func (s *Server) removeData() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	for _, e := range entries {
		if e.Name() == logName || e.Name() == outName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			return fmt.Errorf("redistest: %w", err)
		}
	}
	return nil
}

// Stop kills the server and removes its directory. It is safe to call more
// than once; after Stop, only Stop, Kill, Addr and URL may be used.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	if err := s.kill(); err != nil {
		return err
	}
	s.stopped = true
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	return nil
}

// Do sends one command to the server over a new connection and returns
// the reply rendered as a string: a simple or bulk string as is, an
// integer in decimal, a nil reply as "", and an array as its elements
// joined by "\n". An error reply is returned as an error. The whole
// exchange must finish within two seconds, so Do fails rather than hangs
// against a paused server.
//
// Do is meant for inspecting a server from tests (GET, PTTL, KEYS, INFO,
// CONFIG SET ...), independently of the client under test, so it uses its
// own minimal RESP2 implementation. If Options.Args set --requirepass, Do
// authenticates first on the same connection; with Options.User, as that
// user, or as AdminUser when Options.Rules restrict it.
//
// Do's own commands show up in INFO commandstats, as do the PING and INFO
// with which Start and Restart probe the server; a test that counts
// commands should take a baseline or run CONFIG RESETSTAT first.
func (s *Server) Do(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redistest: Do: no command")
	}
	deadline := time.Now().Add(doTimeout)
	d := &net.Dialer{Deadline: deadline}
	var conn net.Conn
	var err error
	if s.opts.TLS != nil {
		td := tls.Dialer{NetDialer: d, Config: s.opts.TLS.ClientConfig()}
		conn, err = td.Dial("tcp", s.addr)
	} else {
		conn, err = d.Dial("tcp", s.addr)
	}
	if err != nil {
		return "", fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)

	var req []byte
	switch {
	case s.opts.User != "" && s.opts.Rules != nil:
		req = appendCommand(req, "AUTH", AdminUser, adminPassword)
	case s.opts.User != "":
		req = appendCommand(req, "AUTH", s.opts.User, s.password)
	case s.password != "":
		req = appendCommand(req, "AUTH", s.password)
	}
	req = appendCommand(req, args...)
	if _, err := conn.Write(req); err != nil {
		return "", fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	r := bufio.NewReader(conn)
	if s.opts.User != "" || s.password != "" {
		if _, err := readReply(r); err != nil {
			return "", fmt.Errorf("redistest: AUTH: %w", err)
		}
	}
	reply, err := readReply(r)
	if err != nil {
		return "", fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	return reply, nil
}

// appendCommand appends args to b encoded as a RESP2 array of bulk strings,
// the form Redis expects from clients.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// maxBulk bounds bulk and array lengths so that a corrupt stream cannot
// make readReply allocate without limit. It is Redis's own
// proto-max-bulk-len default.
const maxBulk = 512 << 20

// A replyError is an error reply from the server, such as
// "WRONGTYPE Operation against a key holding the wrong kind of value".
type replyError string

func (e replyError) Error() string { return string(e) }

// readReply reads one RESP2 reply from r and renders it as described
// for Do.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return "", replyError(body)
	case ':':
		if _, err := strconv.ParseInt(body, 10, 64); err != nil {
			return "", fmt.Errorf("malformed integer reply %q", body)
		}
		return body, nil
	case '$':
		return readBulk(r, body)
	case '*':
		return readArray(r, body)
	default:
		return "", fmt.Errorf("unsupported reply type %q", kind)
	}
}

// readBulk reads the rest of a bulk string reply from r, whose header
// line said length; a nil bulk string is "".
func readBulk(r *bufio.Reader, length string) (string, error) {
	n, err := strconv.Atoi(length)
	if err != nil || n < -1 || n > maxBulk {
		return "", fmt.Errorf("malformed bulk length %q", length)
	}
	if n == -1 {
		return "", nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return "", errors.New("bulk string not terminated by CRLF")
	}
	return string(buf[:n]), nil
}

// readArray reads the elements of an array reply from r, whose header
// line said length, and joins them with "\n"; a nil array is "".
func readArray(r *bufio.Reader, length string) (string, error) {
	n, err := strconv.Atoi(length)
	if err != nil || n < -1 || n > maxBulk {
		return "", fmt.Errorf("malformed array length %q", length)
	}
	elems := make([]string, 0, max(n, 0))
	var firstErr error
	for range n {
		// Read every element even after an error reply so that the
		// stream stays in sync; report the first error.
		e, err := readReply(r)
		if err != nil {
			var re replyError
			if !errors.As(err, &re) {
				return "", err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		elems = append(elems, e)
	}
	if firstErr != nil {
		return "", firstErr
	}
	return strings.Join(elems, "\n"), nil
}

// TB is the part of testing.TB that StartN and ProxyN use.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// StartN starts n servers with the same options in parallel, because each
// takes tens of milliseconds to boot, and registers a cleanup that stops
// them all. If redis-server is not installed the test fails rather than
// skips: a silently skipped suite would hide that the lock was never
// tested against Redis.
func StartN(tb TB, n int, opts Options) []*Server {
	tb.Helper()
	if _, err := LookPath(); err != nil {
		tb.Fatal(err)
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { servers[i], errs[i] = Start(opts) })
	}
	wg.Wait()
	// Register the cleanup before failing so that servers that did start
	// are stopped too.
	tb.Cleanup(func() {
		for _, s := range servers {
			if s == nil {
				continue
			}
			if err := s.Stop(); err != nil {
				tb.Errorf("stopping redis-server %s: %v", s.Addr(), err)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return servers
}

// URLs returns the URL of each server, in order, the form in which a
// Redlock client is usually given its masters.
func URLs(servers []*Server) []string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return urls
}
