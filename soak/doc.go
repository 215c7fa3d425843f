// Package soak is distlock's fault-injection suite. It has no API: its
// tests run workers (Clients in the test process and in child processes)
// that take one lock over and over and write to a fenced store, while
// masters are killed, restarted with and without their data, and paused,
// client links are slowed and cut through toxiproxy, and whole worker
// processes are paused past their lease. The recorded history is then
// checked: sections that overlap, fencing tokens that go backwards, stale
// writes the store accepted, lock keys left behind, goroutines leaked.
//
// It is a module of its own so that toxiproxy and its dependencies never
// enter the library's go.mod.
//
//	go test -race -count=1 -short ./...          # the short suite (make test)
//	go test -race -count=1 -run TestSoak -v -timeout 30m . -duration 10m -masters 5 # make soak
//
// A run prints its seed; -seed N (or SOAK_SEED=N) replays the same plan of
// faults.
package soak
