package distlock_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// Seventh adversarial review: the `recent` mechanism (queue.go), which
// lets this Client's next acquire count keys holding a just-released value
// as free while that value's deletes are still on their way.
//
// Interleaving driven: Client F reaches master `far` 120 ms late (its
// deletes there are always still on their way when Release returns, so
// recent is set on nearly every cycle, and outlives later leases of the
// name); three goroutines of F and one of a near Client N cycle
// Acquire/Release on one name, with local handoffs between F's goroutines.
// F's next acquire finds master `far` still holding the previous value
// (counted free) while N contends for the other two. Checked: no two
// sections overlap, tokens strictly increase, no Release reports a loss,
// no keys left behind.
func adv7Contend(t *testing.T, far int) {
	const name = "adv7-recent"
	servers := masters(t, 3)
	p, err := redistest.NewProxy(servers[far].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.SetLatency(120 * time.Millisecond)
	nodes := redistest.URLs(servers)
	nodes[far] = p.URL()
	f, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	n := newClient(t, servers, distlock.Config{})
	ctx := ctxTimeout(t, 30*time.Second)

	var in atomic.Int32
	var mu sync.Mutex
	var last uint64
	var errs []string
	fail := func(s string) { mu.Lock(); errs = append(errs, s); mu.Unlock() }
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	run := func(c *distlock.Client, who string) {
		defer wg.Done()
		for time.Now().Before(stop) {
			l, err := c.Acquire(ctx, name, distlock.WithTTL(2*time.Second))
			if err != nil {
				fail(who + " acquire: " + err.Error())
				return
			}
			if in.Add(1) != 1 {
				fail(who + ": two sections at once")
			}
			mu.Lock()
			if l.Token() <= last {
				errs = append(errs, who+": token not increasing")
			}
			last = l.Token()
			mu.Unlock()
			time.Sleep(time.Millisecond)
			if l.Err() != nil {
				fail(who + ": lost in section: " + l.Err().Error())
			}
			in.Add(-1)
			if err := l.Release(ctx); err != nil && errors.Is(err, distlock.ErrLeaseLost) {
				fail(who + " release reports loss: " + err.Error())
			}
		}
	}
	wg.Add(4)
	go run(f, "F1")
	go run(f, "F2")
	go run(f, "F3")
	go run(n, "N")
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("last token %d", last)
	noLockKeys(t, servers)
}

func TestAdv7RecentFarMaster2(t *testing.T) { adv7Contend(t, 2) }
func TestAdv7RecentFarMaster0(t *testing.T) { adv7Contend(t, 0) }
