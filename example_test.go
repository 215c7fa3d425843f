package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/redistest"
)

// masterURLs stands in for the addresses of your masters, such as
// []string{"redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0", "redis://10.0.0.3:6379/0"}.
// Here it starts three local redis-server processes for the example.
func masterURLs() (urls []string, stop func()) {
	var servers []*redistest.Server
	for range 3 {
		s, err := redistest.Start(redistest.Options{})
		if err != nil {
			log.Fatal(err)
		}
		servers = append(servers, s)
	}
	return redistest.URLs(servers), func() {
		for _, s := range servers {
			s.Stop()
		}
	}
}

// Do runs a function while holding a lock, and passes the fencing token to
// storage with every write.
func ExampleClient_Do() {
	nodes, stop := masterURLs()
	defer stop()

	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Do(context.Background(), "nightly-report", func(ctx context.Context, l *distlock.Lease) error {
		// ctx is cancelled the moment the lease is lost. Storage should
		// refuse a write whose token is lower than one it has accepted.
		fmt.Println("holding", l.Name(), "with a token:", l.Token() > 0)
		return nil
	})
	fmt.Println("done:", err)
	// Output:
	// holding nightly-report with a token: true
	// done: <nil>
}

// TryAcquire gives up at once when another holder has the lock.
func ExampleClient_TryAcquire() {
	nodes, stop := masterURLs()
	defer stop()
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	first, err := c.TryAcquire(ctx, "migration")
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.TryAcquire(ctx, "migration")
	fmt.Println("second attempt locked:", errors.Is(err, distlock.ErrLocked))

	first.Release(ctx)
	second, err := c.TryAcquire(ctx, "migration")
	fmt.Println("after release:", err, "token rose:", second.Token() > first.Token())
	second.Release(ctx)
	// Output:
	// second attempt locked: true
	// after release: <nil> token rose: true
}

// A worker selects on the lease's Done channel to stop the moment the
// lease ends.
func ExampleLease_Done() {
	nodes, stop := masterURLs()
	defer stop()
	c, err := distlock.New(distlock.Config{Nodes: nodes})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	l, err := c.Acquire(context.Background(), "leader", distlock.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		l.Release(context.Background()) // or: the lease is lost
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-l.Done():
			fmt.Println("stopped:", l.Err())
			return
		case <-tick.C:
			// one unit of leader work
		}
	}
	// Output:
	// stopped: distlock: lease released
}
