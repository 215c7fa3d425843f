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
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
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
