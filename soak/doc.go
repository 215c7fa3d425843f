// Package soak is distlock's fault-injection suite. It has no API: its
// tests run workers (Clients in the test process and in child processes)
// that take one lock over and over, with Do or Acquire and Release, extend
// it to shorter and longer TTLs, hand it over between goroutines of one
// Client, and write to a fenced store, while masters are killed, restarted
// with and without their data, and paused, the lock's keys vanish early
// on a minority or a majority of masters (a clock jump's stand-in), client
// links are slowed and cut through toxiproxy, commands queued on a
// replaced connection are delivered late (redistest.LateDialer), and whole
// worker processes are paused past their lease. Three phases: persistent
// and volatile masters, and an even number of them. The recorded history
// is then checked: sections that overlap, fencing tokens that go
// backwards, stale writes the store accepted, lock keys left behind,
// goroutines leaked.
//
// It is a module of its own so that toxiproxy and its dependencies never
// enter the library's go.mod.
//
//	go test -race -count=1 -short ./...          # the short suite (make test)
//	go test -race -count=1 -run TestSoak -v -timeout 60m . -args -duration 10m -masters 5 # make soak
//
// A run prints its seed; -seed N (or SOAK_SEED=N) replays the same plan of
// faults.
package soak
