// Command report runs every benchmark workload of distlock beside its peers
// on freshly started redis-server masters and writes results.md and
// chart.svg. From the repository root, `make bench` runs it.
//
//	go run ./cmd/report [-out results] [-scale 1] [-cpuprofile cpu.out]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/distlock/distlock/benchmarks"
)

func main() {
	benchmarks.HandoffWorker() // a worker process of workload (c), when run as one
	out := flag.String("out", "results", "directory for results.md and chart.svg")
	scale := flag.Float64("scale", 1, "multiplies each phase's duration; below 1 also holds 1,000 leases instead of 10k and 100k, and 100k × scale under load")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if err := run(*out, *scale, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(out string, scale float64, cpuprofile string) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := benchmarks.Run(benchmarks.Options{Scale: scale, Log: os.Stderr})
	if err != nil {
		return err
	}
	if err := res.Write(out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s/results.md and %s/chart.svg\n", out, out)
	return nil
}
