package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// A worker is one goroutine that runs Do on lockName over and over.
type worker struct {
	proc   int
	name   string
	client *distlock.Client
	rec    recorder
	ttl    time.Duration
	rnd    *rand.Rand

	// pauseNext: the store asked this process to stop itself at its next
	// write; kept across sections until done.
	pauseNext bool

	acquired atomic.Int64
	errs     atomic.Int64 // Do errors other than the run ending
}

func now() int64 { return time.Now().UnixNano() }

// run loops until ctx ends. It returns an error only when the store
// cannot be reached or refuses a report (a bug in the suite).
func (w *worker) run(ctx context.Context) error {
	for ctx.Err() == nil {
		acqStart := now()
		var recErr error
		err := w.client.Do(ctx, lockName, func(ctx context.Context, l *distlock.Lease) error {
			w.acquired.Add(1)
			recErr = w.section(ctx, l, acqStart)
			return recErr
		}, distlock.WithTTL(w.ttl))
		if recErr != nil {
			return recErr
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, distlock.ErrLeaseLost) {
			w.errs.Add(1)
		}
		// A little think time, so that other Clients get a turn.
		sleep(ctx, time.Duration(w.rnd.IntN(3000))*time.Microsecond)
	}
	return nil
}

// section is the critical section: one to three writes to the store with
// the lease's token, each right after a check that the lease is held, a
// few milliseconds apart, stopping as soon as the lease is lost.
func (w *worker) section(ctx context.Context, l *distlock.Lease, acqStart int64) error {
	sec := section{Proc: w.proc, Worker: w.name, Token: l.Token(), AcqStart: acqStart, Start: now()}
	id, err := w.rec.begin(sec)
	if err != nil {
		return err
	}
	sec.ID = id
	steps := 1 + w.rnd.IntN(3)
	for i := 0; i < steps && !sec.Lost; i++ {
		t := now()
		if l.Err() != nil {
			sec.Lost, sec.Stop = true, now()
			break
		}
		sec.LastHeld = t
		if w.pauseNext {
			w.pauseNext = false
			if v, err := w.pauseSelf(sec, t, l); err != nil {
				return err
			} else if v != "" {
				sec.Violation = v
			}
		}
		_, pause, err := w.rec.write(write{Section: id, Proc: w.proc, Token: sec.Token, Checked: t})
		if err != nil {
			return err
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
	return w.rec.end(sec)
}

// pauseSelf stops this whole process with SIGSTOP between a check and the
// write it guards: the GC pause of the textbook. The test process resumes
// it after more than a TTL. It returns a violation when the lease still
// reports itself held afterwards.
func (w *worker) pauseSelf(sec section, checked int64, l *distlock.Lease) (string, error) {
	ok, err := w.rec.pausing(pauseReport{Proc: w.proc, Section: sec.ID, Token: sec.Token, Checked: checked})
	if err != nil || !ok {
		return "", err
	}
	before := time.Now()
	syscall.Kill(syscall.Getpid(), syscall.SIGSTOP)
	paused := time.Since(before)
	if paused > w.ttl && l.Err() == nil {
		return fmt.Sprintf("Lease.Err returned nil after the process was paused %v with TTL %v", paused, w.ttl), nil
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
