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
	"errors"
	"fmt"
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
	addr     string   // "127.0.0.1:port"
	password string   // from --requirepass in opts.Args, used by Do
	conf     string   // configuration file given first on the command line ("" for none)
	sentinel bool     // run as a Sentinel (redis-server conf --sentinel)
	extra    []string // arguments a StartCluster or StartSentinelGroup adds (before opts.Args)

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
	return start(opts, nil)
}

// start is Start, calling prep (when not nil) on each try before the
// process is launched, once the directory exists and the port is chosen:
// it may write a configuration file there, or set unexported fields.
func start(opts Options, prep func(s *Server) error) (*Server, error) {
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
			if prep != nil {
				err = prep(s)
			}
		}
		if err == nil {
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
	var a []string
	if s.conf != "" {
		a = append(a, s.conf)
	}
	if s.sentinel {
		a = append(a, "--sentinel")
	}
	a = append(a, "--port", strconv.Itoa(s.port))
	if t := s.opts.TLS; t != nil {
		a = []string{ // no Sentinel or Cluster over TLS here
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
	a = append(a, s.extra...)
	return append(a, s.opts.Args...)
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
