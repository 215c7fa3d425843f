// Package distlock provides distributed locks over several independent
// Redis masters, by the Redlock algorithm, for event-driven Go programs.
//
// A [Client] holds connections to N masters (3 or 5, independent of each
// other). [Client.Acquire] takes a lock on a majority of them at once and
// returns a [Lease]. The lease carries a fencing token, strictly greater
// than every earlier holder's; it renews itself in the background; and its
// Done channel closes the moment it is released or lost:
//
//	c, err := distlock.New(distlock.Config{Nodes: []string{"redis://a:6379/0", "redis://b:6379/0", "redis://c:6379/0"}})
//	...
//	defer c.Close()
//	err = c.Do(ctx, "nightly-report", func(ctx context.Context, l *distlock.Lease) error {
//		return store.Write(ctx, report, l.Token()) // storage refuses tokens lower than it has seen
//	})
//
// [Client.Watch] reports a lock's changes (acquired, released, expired) as a
// majority of masters sees them, from the messages distlock's scripts
// publish and from keyspace notifications; a waiting Acquire is woken by
// the same events, and waiters of different Clients take the lock in order
// of arrival.
//
// # Rules of use
//
// Create one Client per process and share it: it serves any number of
// goroutines and lock names, and goroutines of one Client that wait for the
// same name queue locally instead of contending on the masters; a Release
// hands the lock to the next of them without a round trip (see
// [Client.Acquire]).
//
// Every call that blocks takes a context first; the context bounds the call,
// never the lease. A lease ends only by [Lease.Release], [Client.Close], or
// loss.
//
// A lease can be lost at any moment (masters unreachable, the process
// paused past the TTL). [Lease.Done], [Lease.Err] and the context of
// [Client.Do] say so before any other client could take the lock, as far as
// this process can know; but a process can be paused between checking and
// writing. It is not safe to assume the lock is held until Release. Storage
// that must never accept two writers must check the fencing token
// ([Lease.Token]): accept a write only with a token greater than or equal
// to the largest it has seen for that resource, and never a lower one.
//
// Fencing tokens rise only while every master keeps its data. One master
// that restarts without its fence counters can, in a later majority with
// masters that had lagged, return a counter lower than one already handed
// out, and the token goes backwards. Run every master with appendonly yes,
// appendfsync always and maxmemory-policy noeviction.
//
// # Who holds a lock
//
// Every lease stores, beside its 128 random bits, its Client's
// Config.Owner (by default "hostname:pid") and the metadata its Acquire
// gave ([WithMetadata], such as a job id), so that whoever finds a lock
// held knows which process to look at: [Client.Status] and the events of
// [Client.Watch] carry them, as do [Lease.Owner] and [Lease.Metadata].
// Both are public: anyone who can read the lock keys reads them. The
// holder's fencing token is not stored with them (it is drawn after the
// value is written); Status gives each master's fence counter instead.
//
// # Observability
//
// Config.TracerProvider, Config.MeterProvider and Config.Logger are off
// when nil (or a no-op provider), at no cost; distlock uses the
// OpenTelemetry API only, and the program chooses the SDK and exporters.
//
// Spans: distlock.acquire, one per Acquire or TryAcquire, with the lock's
// name, the mode (wait or try), the number of attempts, the time waited
// between attempts, the token, whether the lease was handed over by one of
// the Client's own (distlock.acquire.handoff; then no attempt was made),
// and an "attempt" event per attempt (masters granted and held);
// distlock.fence, under it, when an acquire writes its fence counter back
// (and on its own when a local handoff does);
// distlock.release (distlock.release.handoff when it handed the keys
// over); distlock.extend; distlock.renew, one per background renewal
// batch. Each master's error is recorded on
// the span of the operation it failed.
//
// Metrics, all in the meter "github.com/distlock/distlock":
//
//	distlock.acquire.duration          histogram, s    Acquire and TryAcquire calls, waiting included;
//	                                                   by distlock.acquire.mode and error.type (absent on success)
//	distlock.acquire.attempt.duration  histogram, s    one attempt on the masters, fencing included; by error.type
//	distlock.lease.held                updown, {lease} leases the Client holds now
//	distlock.lease.renewals            counter         renewals (background and Extend); error.type no_quorum or lost
//	distlock.lease.lost                counter         leases lost
//	distlock.fence.writebacks          counter         fence counter write-backs; by error.type
//	distlock.watch.events              counter         events seen by watches; by distlock.event.type
//	distlock.watch.resubscriptions     counter         watch connections subscribed again
//
// error.type is one of locked, no_quorum, expired (granted, but after the
// validity ran out), timeout and canceled (the context's), closed, lost.
// Lock names are span attributes only, never metric attributes: their
// number is unbounded.
//
// The Logger gets a warning when a master stops answering (and a note when
// it answers again), when a lease is lost, and when a watch connection is
// lost; nothing on the path of a healthy acquire.
//
// Errors wrap the sentinel values [ErrLocked], [ErrNoQuorum],
// [ErrLeaseLost], [ErrReleased] and [ErrClosed]; test with [errors.Is].
// When a context ends, the error also matches the context's error.
package distlock
