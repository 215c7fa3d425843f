# Developer and CI entry points. Plain shell and the go tool only.
# The tests start their own redis-server processes on free loopback ports;
# scripts/ensure-redis.sh installs redis-server when it is missing and can.

GO ?= go

.DEFAULT_GOAL := help
.PHONY: help test soak demo examples bench bench-root ensure-redis ensure-spin model

# make soak: SOAK_DURATION split between the persistent and volatile
# phases; SOAK_SEED=N replays a run's fault plan.
SOAK_DURATION ?= 10m
SOAK_MASTERS ?= 5

help:
	@echo "make test      gofmt check, go vet, all tests with -race, and the protocol model (installs redis-server and spin if missing)"
	@echo "make soak      the fault-injection soak (10 minutes, 5 masters) and its figures"
	@echo "make examples  the examples' tests with -race (examples/fencing needs PostgreSQL on 127.0.0.1:5432)"
	@echo "make demo      run examples/demo: 4 workers, 3 masters, one master killed midway"
	@echo "make bench     distlock beside its peers (benchmarks/, a few minutes): writes benchmarks/results/"
	@echo "make bench-root  benchmarks of the root package alone (-benchmem, 3s each)"
	@echo "make model     model-check the protocol with spin (model/README.md; installs spin if missing)"

ensure-redis:
	@scripts/ensure-redis.sh

ensure-spin:
	@scripts/ensure-spin.sh

# model: the Promela model of the protocol (model/): every scenario of the
# fixed protocol must pass, every mutation must be caught (model/check.sh).
model: ensure-spin
	model/check.sh

# test: scripts/test.sh (gofmt, vet, the tests with -race, the short soak,
# the benchmarks' tests; the model beside them at idle CPU priority).
test: ensure-redis ensure-spin
	GO=$(GO) scripts/test.sh

soak: ensure-redis
	cd soak && $(GO) test -race -count=1 -run TestSoak -v -timeout 60m . -args -duration $(SOAK_DURATION) -masters $(SOAK_MASTERS)

demo: ensure-redis
	$(GO) run ./examples/demo

examples: ensure-redis
	$(GO) test -race -count=1 ./examples/...
	cd examples/fencing && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# bench runs every workload of benchmarks/ (its own module: the peers never
# enter the library's go.mod) on fresh redis-server masters and writes
# benchmarks/results/results.md and chart.svg.
bench: ensure-redis
	cd benchmarks && $(GO) vet ./... && $(GO) run ./cmd/report -out results

bench-root: ensure-redis
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3s .
