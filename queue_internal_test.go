package distlock

import (
	"context"
	"runtime"
	"testing"
)

// Release hands its value to the next goroutine in the local queue, and
// only to one that was waiting: a goroutine that comes later, to a free
// name, has nothing to replace.
func TestTurnPassesReleasedValue(t *testing.T) {
	q := &localQueue{slots: make(map[string]*slot)}
	first, ok := q.try("n")
	if !ok || first.replaces != (replaced{}) {
		t.Fatalf("try on a free name: ok %v, replaces %+v; want true and empty", ok, first.replaces)
	}
	got := make(chan *turn)
	go func() {
		next, err := q.wait(context.Background(), nil, "n", "")
		if err != nil {
			t.Error(err)
		}
		got <- next
	}()
	// Wait until the waiter holds its reference, so that pass sees it.
	for {
		q.mu.Lock()
		refs := q.slots["n"].refs
		q.mu.Unlock()
		if refs == 2 {
			break
		}
		runtime.Gosched()
	}
	first.pass(replaced{"v1", 7})
	next := <-got
	if next.replaces != (replaced{"v1", 7}) {
		t.Errorf("waiter's turn replaces %+v; want v1 with counter 7", next.replaces)
	}
	next.pass(replaced{"v2", 8}) // no one waits: nothing to hand over
	later, ok := q.try("n")
	if !ok || later.replaces != (replaced{}) {
		t.Errorf("try after a release with no waiter: ok %v, replaces %+v; want true and empty", ok, later.replaces)
	}
	later.done()
	if len(q.slots) != 0 {
		t.Errorf("%d slots left after every turn ended; want 0", len(q.slots))
	}
}
