package distlock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/redistest"
)

// A lease handed over with the turn that no goroutine takes over (every
// waiter gave up between the Release and its turn) has its keys deleted.
func TestUntakenHandoffDeletesKeys(t *testing.T) {
	const name = "orphan"
	servers := redistest.StartN(t, 3, redistest.Options{})
	c, err := New(Config{Nodes: redistest.URLs(servers)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.Acquire(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// A waiter comes: it counts at the slot.
	s := c.queue.ref(name, "")
	handed, ended, _ := l.handOff(ctx)
	if !handed || !ended {
		t.Fatalf("handOff: handed %v, ended %v; want both", handed, ended)
	}
	if !errors.Is(l.Err(), ErrReleased) {
		t.Errorf("Err %v; want ErrReleased", l.Err())
	}
	// The waiter gives up before it takes its turn.
	c.queue.gaveUp(name, s, "")
	deadline := time.Now().Add(2 * time.Second)
	for _, srv := range servers {
		for {
			v, err := srv.Do("EXISTS", "distlock:"+name)
			if err != nil {
				t.Fatal(err)
			}
			if v == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still holds the lock key of a lease no goroutine took over", srv.Addr())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := len(c.queue.slots); n != 0 {
		t.Errorf("%d slots left; want 0", n)
	}
}
