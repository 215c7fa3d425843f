package distlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDeadlineCtx checks that deadlineCtx ends as context.WithTimeout
// does: DeadlineExceeded at its deadline, Canceled when stopped first,
// and a child made by within no later than its parent.
func TestDeadlineCtx(t *testing.T) {
	var c deadlineCtx
	c.start(context.Background(), time.Now().Add(20*time.Millisecond))
	if c.Err() != nil {
		t.Fatalf("Err before the deadline = %v", c.Err())
	}
	child := c.within(time.Hour)
	if d, _ := child.Deadline(); !d.Equal(c.deadline) {
		t.Errorf("child's deadline %v, want its parent's %v", d, c.deadline)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not done after its deadline")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(&c), context.DeadlineExceeded) {
		t.Errorf("Err = %v, Cause = %v; want DeadlineExceeded", c.Err(), context.Cause(&c))
	}
	<-child.Done()
	child.stop()
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Errorf("child's Err = %v, want DeadlineExceeded", child.Err())
	}
	c.stop() // after the deadline: still DeadlineExceeded
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Errorf("Err after stop = %v, want DeadlineExceeded", c.Err())
	}

	var s deadlineCtx
	s.start(context.WithValue(context.Background(), leaseCtxKey{}, 1), time.Now().Add(time.Hour))
	if s.Value(leaseCtxKey{}) != 1 {
		t.Error("a value of the parent is lost")
	}
	short := s.within(time.Millisecond)
	<-short.Done()
	if !errors.Is(short.Err(), context.DeadlineExceeded) || s.Err() != nil {
		t.Errorf("child's Err = %v, parent's %v; want DeadlineExceeded, nil", short.Err(), s.Err())
	}
	s.stop()
	<-s.Done()
	if !errors.Is(s.Err(), context.Canceled) {
		t.Errorf("Err after stop = %v, want Canceled", s.Err())
	}

	var past deadlineCtx
	past.start(context.Background(), time.Now().Add(-time.Second))
	<-past.Done()
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Errorf("a past deadline: Err = %v", past.Err())
	}
	past.stop()
}
