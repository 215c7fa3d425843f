// Command fencing shows why a lock alone cannot protect storage, and how a
// fencing token does: PostgreSQL refuses the late write of a holder that was
// paused past its lease, because a later holder has written with a larger
// token meanwhile.
//
//	go run .                       # from examples/fencing
//	go run . -nodes redis://a:6379/0,redis://b:6379/0,redis://c:6379/0 -dsn postgres://user@db:5432/app
//
// Redis masters come from -nodes, else $DISTLOCK_NODES (comma-separated),
// else redis://127.0.0.1:6379/0. PostgreSQL comes from -dsn, else
// $DISTLOCK_PG_DSN, else postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
//
// # The scenario
//
// Holder A runs in a child process (this program re-executed with
// DISTLOCK_FENCING_ROLE=A in its environment). It acquires the lock with a
// short TTL (1s), writes "v1" with its token, checks that its lease is still
// held, and is about to write again. Right there, between the check and the
// write, the parent freezes it with SIGSTOP, as a long GC pause, a swapped-out
// process or a stalled VM would. A frozen process renews nothing, so A's
// keys expire on the masters; no trick is involved, the lease really is
// lost. (A separate Client in the same process cannot be frozen like this,
// and Client.Close would release the lock rather than lose it: a child
// process is the simplest honest way.)
//
// Meanwhile holder B (the parent) acquires the lock, as soon as A's keys
// have expired, and gets a larger token; it writes "v2". Then the parent
// resumes A with SIGCONT. A has already made its check, so it goes on with
// its write, "v3", carrying its old token: PostgreSQL refuses it, because
// the row already holds B's larger token. Expected output:
//
//	storage: table fenced_resource_1a2b3c4d, row "examples/fencing"
//	A: token 64 wrote v1
//	A: lease held; next write after a pause
//	A: paused (SIGSTOP)
//	B: acquired token 129, 1.0s after A was paused
//	B: token 129 wrote v2
//	A: resumed (SIGCONT) after 2.0s
//	A: woke, late write with token 64: REFUSED (stale token)
//	A: its lease says: distlock: lease lost: ...
//	B: released
//	storage: row holds token 129, value "v2"
//
// # The conditional write
//
// The table keeps, per resource, the largest token it has accepted:
//
//	INSERT INTO fenced_resource (name, token, value) VALUES ($1, $2, $3)
//	ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, value = EXCLUDED.value
//	WHERE fenced_resource.token <= EXCLUDED.token
//
// It accepts a token equal to the largest it has seen, because the same
// holder may write many times, and refuses a smaller one: a later holder's
// token is always strictly larger. No rows affected means refused. The check
// and the write are one statement, so no pause can come between them.
//
// Each run uses a table of its own, fenced_resource_<random>, and drops it
// at the end, so that runs never disturb each other or leave anything behind.
//
// This program is a module of its own (examples/fencing/go.mod), so that the
// PostgreSQL driver never enters the library's go.mod. It needs a Unix-like
// system for SIGSTOP and SIGCONT.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/distlock/distlock"
)

const (
	// lockName is the lock both holders want, and the row they write.
	lockName = "examples/fencing"

	// DefaultDSN is the PostgreSQL used when neither -dsn nor
	// DISTLOCK_PG_DSN names one.
	DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

	// roleEnv, when set to "A" in the environment, makes this program run
	// holder A instead of the scenario. The parent passes A's settings in
	// the other env* variables.
	roleEnv  = "DISTLOCK_FENCING_ROLE"
	nodesEnv = "DISTLOCK_FENCING_NODES"
	dsnEnv   = "DISTLOCK_FENCING_DSN"
	tableEnv = "DISTLOCK_FENCING_TABLE"
	ttlEnv   = "DISTLOCK_FENCING_TTL"
)

// options sets the scenario's pace.
type options struct {
	TTL   time.Duration // both holders' lease TTL
	Pause time.Duration // how long A stays frozen, at least
}

var defaults = options{TTL: time.Second, Pause: 2 * time.Second}

// report is what run saw, for its test.
type report struct {
	Table        string
	TokenA       uint64 // A's token, as A reported it
	TokenB       uint64
	LateRefused  bool   // A's late write was refused
	StoredToken  uint64 // the row after everything
	StoredValue  string
	TableDropped bool
}

func main() {
	// Holder A: this same program, started by the scenario below.
	if os.Getenv(roleEnv) == "A" {
		os.Exit(holderA())
	}

	nodes := flag.String("nodes", os.Getenv("DISTLOCK_NODES"),
		"comma-separated Redis masters, e.g. redis://host:6379/0 (default: $DISTLOCK_NODES, else "+distlock.DefaultNode+")")
	dsn := flag.String("dsn", envOr("DISTLOCK_PG_DSN", DefaultDSN), "PostgreSQL connection string (default: $DISTLOCK_PG_DSN, else "+DefaultDSN+")")
	opts := defaults
	flag.DurationVar(&opts.TTL, "ttl", defaults.TTL, "lease TTL of both holders")
	flag.DurationVar(&opts.Pause, "pause", defaults.Pause, "how long holder A is frozen, at least (must exceed -ttl)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if _, err := run(ctx, splitNodes(*nodes), *dsn, os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "fencing:", err)
		os.Exit(1)
	}
}

// run plays the scenario described in the package comment: holder A in a
// child process, paused past its TTL; holder B here.
func run(ctx context.Context, nodes []string, dsn string, out io.Writer, opts options) (rep report, err error) {
	if opts.TTL <= 0 {
		opts.TTL = defaults.TTL
	}
	if opts.Pause <= opts.TTL {
		return rep, fmt.Errorf("pause %v must be longer than the TTL %v, or A's lease is not lost", opts.Pause, opts.TTL)
	}
	out = &syncWriter{w: out} // A's output is copied in by other goroutines

	// Storage: a table of our own for this run, dropped at the end.
	db, err := connect(ctx, dsn)
	if err != nil {
		return rep, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	rep.Table = "fenced_resource_" + randomHex(4)
	if _, err := db.Exec(ctx, `CREATE TABLE `+ident(rep.Table)+` (
		name  text PRIMARY KEY,
		token bigint NOT NULL,
		value text
	)`); err != nil {
		return rep, fmt.Errorf("create table %s: %w", rep.Table, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, derr := db.Exec(dctx, `DROP TABLE IF EXISTS `+ident(rep.Table)); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop table %s: %w", rep.Table, derr))
			return
		}
		rep.TableDropped = true
	}()
	fmt.Fprintf(out, "storage: table %s, row %q\n", rep.Table, lockName)

	// B's Client, created before A starts so that a bad -nodes fails fast.
	client, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		return rep, err
	}
	defer client.Close()

	// Start holder A.
	a, err := startA(ctx, nodes, dsn, rep.Table, opts.TTL, out)
	if err != nil {
		return rep, err
	}
	defer a.stop() // if we return early: resume and kill it

	// Wait until A has written v1 and checked its lease, the moment to
	// freeze it.
	msg, err := a.next(ctx, 30*time.Second)
	if err != nil {
		return rep, err
	}
	tokenA, ok := strings.CutPrefix(msg, "ready ")
	if !ok {
		return rep, fmt.Errorf("holder A said %q, want \"ready TOKEN\"", msg)
	}
	if rep.TokenA, err = strconv.ParseUint(tokenA, 10, 64); err != nil {
		return rep, fmt.Errorf("holder A's token %q: %w", tokenA, err)
	}

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return rep, fmt.Errorf("SIGSTOP holder A: %w", err)
	}
	pausedAt := time.Now()
	fmt.Fprintln(out, "A: paused (SIGSTOP)")

	// B waits for the lock: A renews nothing while frozen, so its keys
	// expire within its TTL and B gets the lock, with a larger token.
	actx, cancel := context.WithTimeout(ctx, opts.Pause+10*time.Second)
	lease, err := client.Acquire(actx, lockName, distlock.WithTTL(opts.TTL))
	cancel()
	if err != nil {
		return rep, fmt.Errorf("B: acquire %s: %w", lockName, err)
	}
	rep.TokenB = lease.Token()
	fmt.Fprintf(out, "B: acquired token %d, %.1fs after A was paused\n", rep.TokenB, time.Since(pausedAt).Seconds())
	if err := lease.Err(); err != nil {
		return rep, err
	}
	accepted, err := fencedWrite(ctx, db, rep.Table, lockName, rep.TokenB, "v2")
	if err != nil {
		return rep, fmt.Errorf("B: write: %w", err)
	}
	fmt.Fprintf(out, "B: token %d %s v2\n", rep.TokenB, verdict(accepted, "wrote"))
	if !accepted {
		return rep, fmt.Errorf("B's write with token %d was refused; A's token was %d", rep.TokenB, rep.TokenA)
	}

	// Let A sleep out its pause, then wake it; it goes on with its write.
	select {
	case <-time.After(time.Until(pausedAt.Add(opts.Pause))):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return rep, fmt.Errorf("SIGCONT holder A: %w", err)
	}
	fmt.Fprintf(out, "A: resumed (SIGCONT) after %.1fs\n", time.Since(pausedAt).Seconds())
	if _, err := io.WriteString(a.stdin, "go\n"); err != nil {
		return rep, fmt.Errorf("wake holder A: %w", err)
	}
	msg, err = a.next(ctx, 30*time.Second)
	if err != nil {
		return rep, err
	}
	switch msg {
	case "late refused":
		rep.LateRefused = true
	case "late accepted":
	default:
		return rep, fmt.Errorf("holder A said %q, want \"late refused\" or \"late accepted\"", msg)
	}
	if err := a.wait(30 * time.Second); err != nil {
		return rep, err
	}

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	err = lease.Release(rctx)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("B: release: %w", err)
	}
	fmt.Fprintln(out, "B: released")

	var stored int64
	if err := db.QueryRow(ctx, `SELECT token, value FROM `+ident(rep.Table)+` WHERE name = $1`, lockName).
		Scan(&stored, &rep.StoredValue); err != nil {
		return rep, fmt.Errorf("read back: %w", err)
	}
	rep.StoredToken = uint64(stored)
	fmt.Fprintf(out, "storage: row holds token %d, value %q\n", rep.StoredToken, rep.StoredValue)
	if !rep.LateRefused {
		return rep, fmt.Errorf("storage accepted A's late write with stale token %d after B's %d", rep.TokenA, rep.TokenB)
	}
	return rep, nil
}

// holderA is holder A, run in the child process. It reports to the parent
// on stdout: lines for people, and lines starting with "@" for the parent.
// It returns the process's exit code.
func holderA() int {
	if err := runA(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "A:", err)
		return 1
	}
	return 0
}

func runA(in io.Reader, out io.Writer) error {
	ctx := context.Background()
	ttl, err := time.ParseDuration(os.Getenv(ttlEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", ttlEnv, err)
	}
	table := os.Getenv(tableEnv)

	db, err := connect(ctx, os.Getenv(dsnEnv))
	if err != nil {
		return err
	}
	defer db.Close(ctx)

	client, err := distlock.New(distlock.Config{Nodes: splitNodes(os.Getenv(nodesEnv))})
	if err != nil {
		return err
	}
	defer client.Close()

	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	lease, err := client.Acquire(actx, lockName, distlock.WithTTL(ttl))
	cancel()
	if err != nil {
		return fmt.Errorf("acquire %s: %w", lockName, err)
	}
	token := lease.Token()

	accepted, err := fencedWrite(ctx, db, table, lockName, token, "v1")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "A: token %d %s v1\n", token, verdict(accepted, "wrote"))

	// The check that a lock alone relies on: the lease is held right now.
	if err := lease.Err(); err != nil {
		return fmt.Errorf("lease lost before the pause: %w", err)
	}
	fmt.Fprintln(out, "A: lease held; next write after a pause")

	// Here the parent freezes this process (SIGSTOP) and later resumes it
	// (SIGCONT), then says "go": a process can be paused between any check
	// and the write it guards. Reading a line only fixes where the pause
	// falls; the SIGSTOP is what makes the lease run out, since a frozen
	// process sends no renewals.
	fmt.Fprintf(out, "@ready %d\n", token)
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting to be woken: %w", err)
	}

	// The late write, with the token A acquired: storage decides.
	accepted, err = fencedWrite(ctx, db, table, lockName, token, "v3")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "A: woke, late write with token %d: %s\n", token, verdict(accepted, "ACCEPTED"))
	if accepted {
		fmt.Fprintln(out, "@late accepted")
	} else {
		fmt.Fprintln(out, "@late refused")
	}

	// Now that the runtime runs again, the lease says what happened.
	<-lease.Done()
	fmt.Fprintf(out, "A: its lease says: %v\n", lease.Err())
	// Release of a lost lease deletes only keys that still hold A's value:
	// B's keys are safe. It reports the loss, which we know already.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := lease.Release(rctx); err != nil && !errors.Is(err, distlock.ErrLeaseLost) {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// fencedWrite stores value for name unless storage has already accepted a
// larger token for name. It reports whether the write was accepted. The
// comparison and the write are one statement: no pause can split them.
func fencedWrite(ctx context.Context, db *pgx.Conn, table, name string, token uint64, value string) (bool, error) {
	if token > math.MaxInt64 {
		return false, fmt.Errorf("token %d does not fit a bigint", token)
	}
	t := ident(table)
	tag, err := db.Exec(ctx, `INSERT INTO `+t+` (name, token, value) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, value = EXCLUDED.value
		WHERE `+t+`.token <= EXCLUDED.token`,
		name, int64(token), value)
	if err != nil {
		return false, fmt.Errorf("fenced write to %s: %w", table, err)
	}
	return tag.RowsAffected() == 1, nil
}

// verdict is how a write's outcome is printed.
func verdict(accepted bool, yes string) string {
	if accepted {
		return yes
	}
	return "REFUSED (stale token)"
}

// connect opens one connection to PostgreSQL, and says clearly where it
// tried when it cannot.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL DSN: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d, database %q, user %q (set -dsn or DISTLOCK_PG_DSN): %w",
			cfg.Host, cfg.Port, cfg.Database, cfg.User, err)
	}
	return db, nil
}

// holder is the running child process of holder A.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	msgs  chan string // its "@" lines, without the "@"
	done  chan error  // its exit
	once  sync.Once
}

// startA starts holder A: this program again, with roleEnv=A. Its lines
// for people are copied to out; its "@" lines go to msgs.
func startA(ctx context.Context, nodes []string, dsn, table string, ttl time.Duration, out io.Writer) (*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start holder A: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		roleEnv+"=A",
		nodesEnv+"="+strings.Join(nodes, ","),
		dsnEnv+"="+dsn,
		tableEnv+"="+table,
		ttlEnv+"="+ttl.String(),
	)
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start holder A: %w", err)
	}
	h := &holder{cmd: cmd, stdin: stdin, msgs: make(chan string, 8), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if msg, ok := strings.CutPrefix(sc.Text(), "@"); ok {
				h.msgs <- msg
			} else {
				fmt.Fprintln(out, sc.Text())
			}
		}
		close(h.msgs)
		// Wait only after stdout is drained, as exec requires.
		h.done <- cmd.Wait()
	}()
	return h, nil
}

// next returns holder A's next "@" message.
func (h *holder) next(ctx context.Context, timeout time.Duration) (string, error) {
	select {
	case msg, ok := <-h.msgs:
		if !ok {
			return "", fmt.Errorf("holder A ended early: %v", h.wait(timeout))
		}
		return msg, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("holder A said nothing for %v", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// wait waits for holder A to exit, and returns its error.
func (h *holder) wait(timeout time.Duration) error {
	var err error
	h.once.Do(func() {
		h.stdin.Close()
		select {
		case err = <-h.done:
		case <-time.After(timeout):
			h.cmd.Process.Signal(syscall.SIGCONT)
			h.cmd.Process.Kill()
			err = <-h.done
			err = fmt.Errorf("holder A did not exit within %v; killed: %v", timeout, err)
		}
		if err != nil {
			err = fmt.Errorf("holder A: %w", err)
		}
	})
	return err
}

// stop ends holder A if it is still running: a frozen process would
// otherwise never exit.
func (h *holder) stop() {
	h.once.Do(func() {
		h.stdin.Close()
		h.cmd.Process.Signal(syscall.SIGCONT)
		h.cmd.Process.Kill()
		<-h.done
	})
}

// ident quotes a table name for SQL.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// splitNodes turns "a, b,c" into ["a" "b" "c"], and "" into nil (which
// distlock.Config reads as the default node).
func splitNodes(s string) []string {
	var nodes []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			nodes = append(nodes, n)
		}
	}
	return nodes
}
