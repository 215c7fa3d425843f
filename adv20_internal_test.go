package distlock

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/redistest"
)

// Adversarial read 20: a watcher.send that drained the full channel to
// mark the event after the dropped one, while the receiver kept reading,
// delivered events out of order (493 inversions in 200k). Watch promises
// its events in order; the counts must add up.
func TestAdv20WatchSendKeepsOrder(t *testing.T) {
	runtime.GOMAXPROCS(2)
	const total = 200000
	w := &watcher{ch: make(chan Event, 4)}
	done := make(chan struct{})
	var got, missed, inversions int
	var first string
	go func() {
		defer close(done)
		last := -1
		for ev := range w.ch {
			got++
			missed += ev.Missed
			if ev.Masters <= last {
				inversions++
				if first == "" {
					first = "seq " + strconv.Itoa(ev.Masters) + " after seq " + strconv.Itoa(last)
				}
			}
			last = ev.Masters
		}
	}()
	for i := range total {
		w.send(Event{Masters: i}) // the only sender, as under h.mu
	}
	close(w.ch)
	<-done
	t.Logf("sent %d, received %d, Missed sum %d, inversions %d", total, got, missed, inversions)
	if got+missed != total {
		t.Errorf("received %d and Missed %d; want %d in all", got, missed, total)
	}
	if inversions > 0 {
		t.Errorf("receiver saw events out of order %d times (first: %s)", inversions, first)
	}
}

// Adversarial read 20: Close's *QuorumError took Errs from the batch's
// per-master errors, the first failed reply on that master for any lease
// of the batch, and Granted from the lease sampled. When master
// 0 refuses one lease's delete (a key of another type there) but answers
// the sampled lease's, the error says the sample was granted by 1 master
// and at once names master 0 as failing for it: Errs is to be nil where
// the master answered (errors.go:37).
func TestAdv20CloseErrorNamesOnlySilentMasters(t *testing.T) {
	servers := redistest.StartN(t, 3, redistest.Options{})
	ctx := context.Background()
	var clients []*Client
	for k := range 6 {
		c, err := New(Config{Nodes: redistest.URLs(servers)})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		for j := range 3 {
			name := "adv20-close-" + strconv.Itoa(k) + "-" + strconv.Itoa(j)
			if _, err := c.Acquire(ctx, name, WithTTL(30*time.Second)); err != nil {
				t.Fatal(err)
			}
			if j == 0 { // lease A: another type on master 0
				req, _ := c.newRequest("acquire", name, nil)
				// Acquire returns at a majority: master 0's SET, still on
				// its way, could land between the DEL and the HSET.
				for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if n, _ := servers[0].Do("EXISTS", req.key); n == "1" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s never set on master 0", req.key)
					}
				}
				servers[0].Do("DEL", req.key)
				if _, err := servers[0].Do("HSET", req.key, "f", "v"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	servers[1].Kill()
	servers[2].Kill()
	covered := false // a sample other than lease A: granted by master 0
	for _, c := range clients {
		err := c.Close()
		var qe *QuorumError
		if !errors.As(err, &qe) {
			t.Fatalf("Close: %v", err)
		}
		if qe.Granted == 1 {
			covered = true
			if qe.Errs[0] != nil {
				t.Errorf("Close: Granted %d, yet Errs[0] = %v: %v", qe.Granted, qe.Errs[0], err)
			}
		}
	}
	if !covered {
		t.Log("the sample was lease A in every Client (p≈0.4%): nothing checked")
	}
}
