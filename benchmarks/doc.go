// Package benchmarks measures distlock beside its peers on the same
// redis-server masters, with the same workloads, in one run: go-redsync's
// redsync (over go-redis v9), bsm/redislock, rueidis's rueidislock, and a
// floor that sends a Redlock's round trips with raw rueidis and no library
// logic.
//
// It is a module of its own so that the peers never enter distlock's
// go.mod. cmd/report runs every workload and writes a Markdown table and an
// SVG chart into results/; bench_test.go exposes the same workloads as
// testing.B benchmarks, for profiling one of them:
//
//	go test -run '^$' -bench 'Cycle/distlock-3/goroutines=64' -cpuprofile cpu.out
//	go tool pprof -top cpu.out
//
// See README.md for the workloads and what each figure means.
package benchmarks
