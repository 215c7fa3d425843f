package benchmarks

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Workload (c) with each worker in a process of its own, holding one
// Client, as workers on separate machines are (issue 16: "8 workers in 8
// Clients on one lock, separate processes"). The processes are this
// program run again (os.Executable) with handoffWorkerEnv set: every
// program that calls HandoffProcs calls HandoffWorker first thing in main
// (cmd/report) or TestMain. Times cross processes as wall-clock readings
// of one machine's clock.

// handoffWorkerEnv, when set, holds a worker process's workerSpec.
const handoffWorkerEnv = "DISTLOCK_BENCH_HANDOFF_WORKER"

// workerSpec is what a worker process is told: the peer, its masters,
// and how long to work once started.
type workerSpec struct {
	Peer  string        `json:"peer"`
	Addrs []string      `json:"addrs"`
	D     time.Duration `json:"d"`
}

// workerResult is what a worker process prints when done.
type workerResult struct {
	Jobs     []Job     `json:"jobs"`
	Failures int64     `json:"failures"`
	Ended    time.Time `json:"ended"`
	Err      string    `json:"err,omitempty"`
}

// HandoffWorker makes this process a worker of HandoffProcs when the
// environment says so, and exits when the work is done; otherwise it
// returns at once.
func HandoffWorker() {
	spec := os.Getenv(handoffWorkerEnv)
	if spec == "" {
		return
	}
	res := handoffWorker(spec, os.Stdin, os.Stdout)
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// handoffWorker opens the peer, says "ready", waits for the start line
// on in (the start time, in Unix nanoseconds), and works until the spec's
// duration has passed since then.
func handoffWorker(specJSON string, in io.Reader, out io.Writer) workerResult {
	var spec workerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return workerResult{Err: fmt.Sprintf("%s: %v", handoffWorkerEnv, err)}
	}
	p := peerByID(spec.Peer)
	lk, err := p.Open(spec.Addrs, TTL, 0)
	if err != nil {
		return workerResult{Err: err.Error()}
	}
	defer lk.Close()
	fmt.Fprintln(out, "ready")
	var startNs int64
	if _, err := fmt.Fscanln(in, &startNs); err != nil {
		return workerResult{Err: "reading the start time: " + err.Error()}
	}
	start := time.Unix(0, startNs)
	time.Sleep(time.Until(start))
	jobs, failures := work(lk, start.Add(spec.D))
	return workerResult{Jobs: jobs, Failures: failures, Ended: time.Now()}
}

// HandoffProcs runs workload (c) for d with each of workers in a process
// of its own, each with one instance of p on m's masters. It returns
// what Handoff does; elapsed runs from the common start to the last
// worker's end.
func HandoffProcs(m *Masters, p Peer, workers int, d time.Duration) (jobs []Job, elapsed time.Duration, failures int64, err error) {
	if p.Masters > len(m.Addrs) {
		return nil, 0, 0, fmt.Errorf("benchmarks: %s needs %d masters, the run has %d", p.ID, p.Masters, len(m.Addrs))
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, 0, err
	}
	spec, err := json.Marshal(workerSpec{Peer: p.ID, Addrs: m.Addrs[:p.Masters], D: d})
	if err != nil {
		return nil, 0, 0, err
	}
	type proc struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
	}
	procs := make([]proc, 0, workers)
	defer func() {
		for _, pr := range procs {
			pr.stdin.Close()
			if pr.cmd.ProcessState == nil {
				pr.cmd.Process.Kill()
				pr.cmd.Wait()
			}
		}
	}()
	for range workers {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), handoffWorkerEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, 0, 0, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, 0, 0, err
		}
		if err := cmd.Start(); err != nil {
			return nil, 0, 0, err
		}
		procs = append(procs, proc{cmd, stdin, bufio.NewReader(stdout)})
	}
	// Every worker has opened its peer: start them together, a moment
	// from now.
	for _, pr := range procs {
		line, err := pr.stdout.ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			return nil, 0, 0, fmt.Errorf("benchmarks: handoff worker process: %q instead of ready (%v)", line, err)
		}
	}
	start := time.Now().Add(20 * time.Millisecond)
	for _, pr := range procs {
		fmt.Fprintln(pr.stdin, start.UnixNano())
	}
	// One after another: a worker whose result does not fit its pipe
	// waits for its turn to be read, after its work.
	results := make([]workerResult, len(procs))
	errs := make([]error, len(procs))
	for i, pr := range procs {
		errs[i] = json.NewDecoder(pr.stdout).Decode(&results[i])
		if werr := pr.cmd.Wait(); errs[i] == nil {
			errs[i] = werr
		}
	}
	end := start
	for i, r := range results {
		if errs[i] == nil && r.Err != "" {
			errs[i] = errors.New(r.Err)
		}
		if errs[i] != nil {
			return nil, 0, 0, fmt.Errorf("benchmarks: handoff worker process %d: %w", i, errs[i])
		}
		jobs = append(jobs, r.Jobs...)
		failures += r.Failures
		if r.Ended.After(end) {
			end = r.Ended
		}
	}
	return jobs, end.Sub(start), failures, nil
}
