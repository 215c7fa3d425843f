package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distlock/distlock"
)

// lockName is the one lock every worker contends for.
const lockName = "soak"

// keyPrefix keeps the suite's keys apart; fence counters are under
// keyPrefix+"fence:".
const keyPrefix = "soak:"

// A worker is one goroutine that takes lockName over and over, with Do or
// with Acquire and Release, several per Client (so that a Release often
// hands the lock over to a goroutine of its own Client), and calls Extend
// with shorter and longer TTLs in its sections.
type worker struct {
	proc   int
	name   string
	client *distlock.Client
	rec    recorder
	ttl    time.Duration
	rnd    *rand.Rand
	// solo: the times when only one Client's workers take the lock;
	// clientIdx is this worker's Client (0..inProcess-1 in the test
	// process, then the worker processes').
	solo      solo
	clientIdx int

	// pauseNext: the store asked this process to stop itself at its next
	// write; kept across sections until done.
	pauseNext bool

	acquired atomic.Int64
	errs     atomic.Int64 // Do and Acquire errors other than the run ending
}

func now() int64 { return time.Now().UnixNano() }

// Ways a worker takes the lock, as section.Mode records them.
const (
	modeDo      = "Do"
	modeAcquire = "Acquire+Release"
)

// run loops until ctx ends. It returns an error only when the store
// cannot be reached or refuses a report (a bug in the suite).
func (w *worker) run(ctx context.Context) error {
	for ctx.Err() == nil {
		if c, until, ok := w.solo.at(now()); ok && c != w.clientIdx {
			sleep(ctx, time.Duration(until-now()))
			continue
		}
		var err error
		if w.rnd.IntN(2) == 0 {
			err = w.viaDo(ctx)
		} else {
			err = w.viaAcquire(ctx)
		}
		if err != nil {
			return err
		}
		// A little think time, so that other Clients get a turn.
		sleep(ctx, time.Duration(w.rnd.IntN(3000))*time.Microsecond)
	}
	return nil
}

// A solo schedule gives, now and then, a window in which the workers of
// one Client alone take the lock: with other Clients waiting, a Release
// passes the lock on to the one first in master 0's line, so that a local
// handoff (Release handing the keys to a goroutine of its own Client)
// happens mostly when no other Client waits. Windows are drawn from the
// seed and the phase's start, so every process computes the same ones.
type solo struct {
	seed    uint64
	start   int64 // Unix ns; 0: no windows
	clients int
}

const soloSlot = 800 * time.Millisecond

// at returns the Client whose window t falls in, and the window's end.
func (s solo) at(t int64) (client int, until int64, ok bool) {
	if s.start == 0 || t < s.start {
		return 0, 0, false
	}
	slot := (t - s.start) / int64(soloSlot)
	r := rand.New(rand.NewPCG(s.seed^0x5010, uint64(slot)))
	if r.IntN(4) != 0 {
		return 0, 0, false
	}
	return r.IntN(s.clients), s.start + (slot+1)*int64(soloSlot), true
}

// viaDo runs one section in Do, which releases the lease when it returns.
func (w *worker) viaDo(ctx context.Context) error {
	sec := section{Mode: modeDo, AcqStart: now()}
	var recErr error
	err := w.client.Do(ctx, lockName, func(ctx context.Context, l *distlock.Lease) error {
		w.acquired.Add(1)
		sec, recErr = w.section(ctx, l, sec)
		if recErr == nil {
			recErr = w.rec.end(sec)
		}
		return recErr
	}, distlock.WithTTL(w.ttl))
	if recErr != nil {
		return recErr
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, distlock.ErrLeaseLost) {
		w.errs.Add(1)
	}
	return nil
}

// viaAcquire runs one section between Acquire and Release, and checks
// what Release promises: a lost lease's Release reports ErrLeaseLost, a
// second Release returns nil, and the lease is over when it returns.
func (w *worker) viaAcquire(ctx context.Context) error {
	sec := section{Mode: modeAcquire, AcqStart: now()}
	l, err := w.client.Acquire(ctx, lockName, distlock.WithTTL(w.ttl))
	if err != nil {
		if ctx.Err() == nil {
			w.errs.Add(1)
		}
		return nil
	}
	w.acquired.Add(1)
	lctx, cancel := l.Context(ctx)
	sec, err = w.section(lctx, l, sec)
	cancel()
	if err != nil {
		l.Release(context.Background())
		return err
	}
	lost := l.Err()
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	rerr := l.Release(rctx)
	var bad []string
	switch {
	case errors.Is(lost, distlock.ErrLeaseLost) && !errors.Is(rerr, distlock.ErrLeaseLost):
		bad = append(bad, fmt.Sprintf("Release of a lease lost before it (%v) returned %v; want ErrLeaseLost", lost, rerr))
	case lost == nil && errors.Is(rerr, distlock.ErrLeaseLost):
		sec.ReleaseLost = true // lost after the section's last check
	}
	// A second Release returns nil, whatever the first returned.
	if err := l.Release(rctx); err != nil {
		bad = append(bad, fmt.Sprintf("a second Release returned %v (the first %v); want nil", err, rerr))
	}
	select {
	case <-l.Done():
	default:
		bad = append(bad, "Done not closed after Release returned")
	}
	if e := l.Err(); !errors.Is(e, distlock.ErrReleased) && !errors.Is(e, distlock.ErrLeaseLost) {
		bad = append(bad, fmt.Sprintf("Err after Release: %v; want ErrReleased or ErrLeaseLost", e))
	}
	if len(bad) > 0 {
		if sec.Violation != "" {
			bad = append([]string{sec.Violation}, bad...)
		}
		sec.Violation = strings.Join(bad, "; ")
	}
	return w.rec.end(sec)
}

// section is the critical section: one to three writes to the store with
// the lease's token, each right after a check that the lease is held, a
// few milliseconds apart, stopping as soon as the lease is lost; now and
// then an Extend with a TTL between a third of and three times the
// worker's before a check. It records the section's begin with the store
// and returns it for the caller to end.
func (w *worker) section(ctx context.Context, l *distlock.Lease, sec section) (section, error) {
	sec.Proc, sec.Worker, sec.Token, sec.Start = w.proc, w.name, l.Token(), now()
	id, err := w.rec.begin(sec)
	if err != nil {
		return sec, err
	}
	sec.ID = id
	violation := func(format string, args ...any) {
		if sec.Violation != "" {
			sec.Violation += "; "
		}
		sec.Violation += fmt.Sprintf(format, args...)
	}
	steps := 1 + w.rnd.IntN(3)
	for i := 0; i < steps && !sec.Lost; i++ {
		if w.rnd.IntN(4) == 0 {
			w.extend(ctx, l, &sec, violation)
		}
		t, mono := now(), time.Now()
		if l.Err() != nil {
			sec.Lost, sec.Stop = true, now()
			break
		}
		// Err said held: the validity had not run out when it was called.
		if dl := l.Deadline(); dl.Before(mono) {
			violation("Lease.Err returned nil %v after the lease's Deadline", mono.Sub(dl))
		}
		sec.LastHeld = t
		if w.pauseNext {
			w.pauseNext = false
			if v, err := w.pauseSelf(sec, t, l); err != nil {
				return sec, err
			} else if v != "" {
				violation("%s", v)
			}
		}
		_, pause, err := w.rec.write(write{Section: id, Proc: w.proc, Token: sec.Token, Checked: t})
		if err != nil {
			return sec, err
		}
		w.pauseNext = w.pauseNext || pause
		hold := time.NewTimer(time.Duration(1+w.rnd.IntN(8)) * time.Millisecond)
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), distlock.ErrLeaseLost) {
				sec.Lost, sec.Stop = true, now()
			} else {
				i = steps // the run ends
			}
		case <-hold.C:
		}
		hold.Stop()
	}
	if !sec.Lost {
		// The section's end is a last check, like any other.
		t := now()
		if l.Err() == nil {
			sec.LastHeld = t
		} else {
			sec.Lost = true
		}
		sec.Stop = now()
	}
	if sec.Lost {
		sec.Deadline = l.Deadline().UnixNano()
	}
	return sec, nil
}

// extend calls Extend with a random TTL, shorter or longer than the
// worker's, bounded by a timeout, and checks that a successful Extend
// gave the lease no validity beyond its new TTL.
func (w *worker) extend(ctx context.Context, l *distlock.Lease, sec *section, violation func(string, ...any)) {
	ttl := (w.ttl/3 + time.Duration(w.rnd.Int64N(int64(w.ttl)*8/3))).Truncate(time.Millisecond)
	ectx, cancel := context.WithTimeout(ctx, w.ttl/2)
	err := l.Extend(ectx, ttl)
	cancel()
	// A background renewal that moved the deadline before it is read here
	// began before after, with the same TTL: after+ttl still bounds it.
	dl := l.Deadline()
	after := time.Now()
	sec.Extends++
	if ttl < w.ttl {
		sec.ExtendsShorter++
	}
	if err != nil {
		sec.ExtendsFailed++
		return
	}
	if l.Err() == nil && dl.After(after.Add(ttl)) {
		violation("Extend(%v) returned nil, yet the lease's Deadline is %v later than Extend's return", ttl, dl.Sub(after))
	}
}

// pauseSelf stops this whole process with SIGSTOP between a check and the
// write it guards: the GC pause of the textbook. The test process resumes
// it after more than a TTL. It returns a violation when the lease still
// reports itself held afterwards although the pause outlasted the TTL in
// force (which an Extend may have made longer than the worker's).
func (w *worker) pauseSelf(sec section, checked int64, l *distlock.Lease) (string, error) {
	ok, err := w.rec.pausing(pauseReport{Proc: w.proc, Section: sec.ID, Token: sec.Token, Checked: checked})
	if err != nil || !ok {
		return "", err
	}
	ttl := l.TTL()
	before := time.Now()
	syscall.Kill(syscall.Getpid(), syscall.SIGSTOP)
	paused := time.Since(before)
	if paused > ttl && l.Err() == nil {
		return fmt.Sprintf("Lease.Err returned nil after the process was paused %v with TTL %v", paused, ttl), nil
	}
	return "", nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
