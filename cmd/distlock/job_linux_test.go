package main

import (
	"bytes"
	"github.com/distlock/distlock/internal/redistest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests of what happens to the command, its children and the terminal
// when distlock runs in a terminal, is stopped or dies. They need Linux:
// pseudo-terminals, /proc, and (for the command's descendants) a child
// subreaper.

// shell returns the command sh -c script, with DISTLOCK_NODES set to
// nodes and $DISTLOCK the path of the distlock binary under test.
func shell(t *testing.T, nodes []string, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "DISTLOCK_NODES="+strings.Join(nodes, ","), "DISTLOCK="+binary, "PS1=")
	return cmd
}

// fileSize returns the size of the file at path, 0 when it does not exist.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// ticker is a shell loop that appends a line to $LOG every 20 ms: a
// command doing work that needs the lock.
const ticker = `while :; do echo tick >> "$LOG"; sleep 0.02; done`

// TestRunTerminalRead: a command that reads the terminal gets what is
// typed, and one that sets the terminal's modes is not stopped; Ctrl-C
// reaches the command. distlock gives the command the terminal's
// foreground, as a shell does.
func TestRunTerminalRead(t *testing.T) {
	_, nodes := startMasters(t, 3)

	t.Run("read", func(t *testing.T) {
		cmd := distlockCmd(t, nodes, "run", "tty", "--", "sh", "-c", `echo ready; read x; echo "got $x"`)
		term := startInTerminal(t, cmd)
		term.waitFor(t, "ready", 10*time.Second)
		term.type_(t, "hello\n")
		term.waitFor(t, "got hello", 5*time.Second)
		if err := cmd.Wait(); err != nil {
			t.Errorf("distlock: %v; want exit status 0\n%s", err, term.text())
		}
	})

	t.Run("stty and Ctrl-C", func(t *testing.T) {
		cmd := distlockCmd(t, nodes, "run", "tty", "--", "sh", "-c", `stty -echo; echo ready; read x; echo "not interrupted"`)
		term := startInTerminal(t, cmd)
		term.waitFor(t, "ready", 10*time.Second)
		term.type_(t, "\x03") // Ctrl-C
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("distlock still running 5s after Ctrl-C; the terminal showed:\n%s", term.text())
		}
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("exit status %d; want 130 (the command's, killed by SIGINT)\n%s", code, term.text())
		}
	})
	// Each released its lock.
	run(t, nodes, "status", "tty").want(t, 0)
}

// TestRunCtrlZ stops distlock run with Ctrl-Z in a shell with job
// control, for longer than the TTL: the command stops with it (its log
// stops growing), another holder takes the lock, and on fg distlock
// kills the command before it runs again and exits 122.
func TestRunCtrlZ(t *testing.T) {
	_, nodes := startMasters(t, 3)
	log := filepath.Join(t.TempDir(), "log")
	cmd := shell(t, nodes, `set -m
"$DISTLOCK" run --ttl 1s ctrlz -- sh -c 'echo ready; `+ticker+`'
echo "distlock stopped: $?"
read x
fg >/dev/null
echo "distlock ended: $?"
read x`)
	cmd.Env = append(cmd.Env, "LOG="+log)
	term := startInTerminal(t, cmd)
	term.waitFor(t, "ready", 10*time.Second)
	time.Sleep(100 * time.Millisecond) // some ticks
	term.type_(t, "\x1a")              // Ctrl-Z
	// Stopped by SIGSTOP, as the Go runtime ignores SIGTSTP once caught.
	term.waitFor(t, "distlock stopped: 147", 5*time.Second)
	stopped := fileSize(t, log)
	if stopped == 0 {
		t.Fatal("the command never wrote its log")
	}

	// The lease lapses while distlock is stopped: another takes the lock.
	start := time.Now()
	for {
		r := run(t, nodes, "run", "--try", "ctrlz", "--", "true")
		if r.code == 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("lock not free 10s after Ctrl-Z with --ttl 1s: %s", r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := fileSize(t, log); got != stopped {
		t.Fatalf("log grew from %d to %d bytes while distlock was stopped; want the command stopped too", stopped, got)
	}

	term.type_(t, "\n") // fg
	term.waitFor(t, "distlock ended: 122", 5*time.Second)
	if !strings.Contains(term.text(), "before it runs again") {
		t.Errorf("distlock did not say the command was killed; the terminal showed:\n%s", term.text())
	}
	time.Sleep(100 * time.Millisecond)
	if got := fileSize(t, log); got != stopped {
		t.Errorf("log grew from %d to %d bytes after fg; want the command killed before it ran again", stopped, got)
	}
}

// stillWriting reports whether the file at path grows within 300 ms: 15
// ticks of the ticker loop.
func stillWriting(t *testing.T, path string) bool {
	t.Helper()
	before := fileSize(t, path)
	time.Sleep(300 * time.Millisecond)
	return fileSize(t, path) != before
}

// processState returns the state letter of process pid (R, S, T, Z...),
// or "" when it does not exist.
func processState(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return ""
	}
	return string(stat[i+2])
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	s := processState(pid)
	return s != "" && s != "Z" && s != "X"
}

// readPid waits for the file at path to hold a pid, and returns it.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "a pid in "+path, func() bool {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && pid > 0
	})
	return pid
}

// killOnCleanup kills, when the test ends, the process group of the
// command that printed line, "ready PID", and returns PID: a failed test
// must not leave it running with distlock's output pipes open.
func killOnCleanup(t *testing.T, line string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "ready "))
	if err != nil {
		t.Fatalf("%q: want ready PID", line)
	}
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	})
	return pid
}

// TestRunTSTP sends SIGTSTP to distlock itself, as a terminal's Ctrl-Z
// does when distlock has the terminal but the command does not (its
// input and output redirected): the command stops with distlock, and
// when distlock is continued after the lease lapsed, the command is
// killed before it runs again.
func TestRunTSTP(t *testing.T) {
	_, nodes := startMasters(t, 3)
	log := filepath.Join(t.TempDir(), "log")
	cmd := distlockCmd(t, nodes, "run", "--ttl", "1s", "tstp", "--", "sh", "-c", `echo "ready $$"; `+ticker)
	cmd.Env = append(cmd.Env, "LOG="+log)
	// A group of its own, as a shell's job: a group with no parent in
	// another group of the session is not stopped by SIGTSTP.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stderr, wait := background(t, cmd)
	killOnCleanup(t, waitLine(t, stdout, "ready"))
	cmd.Process.Signal(syscall.SIGTSTP)
	waitFor(t, "distlock stopped", func() bool { return processState(cmd.Process.Pid) == "T" })
	stopped := fileSize(t, log)

	start := time.Now()
	for run(t, nodes, "run", "--try", "tstp", "--", "true").code != 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("lock not free 10s after SIGTSTP with --ttl 1s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := fileSize(t, log); got != stopped {
		t.Fatalf("log grew from %d to %d bytes while distlock was stopped; want the command stopped too", stopped, got)
	}
	cmd.Process.Signal(syscall.SIGCONT)
	waitLine(t, stderr, "while stopped; killing sh before it runs again")
	if code := wait(); code != 122 {
		t.Errorf("exit status %d; want 122", code)
	}
	if got := fileSize(t, log); got != stopped {
		t.Errorf("log grew from %d to %d bytes after SIGCONT; want the command killed before it ran again", stopped, got)
	}
}

// TestRunDescendants: every process the command started ends before the
// lock is released, whether it stayed in the command's process group or
// left it, and whether it ignores SIGTERM or not; when the lease is lost
// and when the command exits normally.
func TestRunDescendants(t *testing.T) {
	for _, tc := range []struct {
		name  string
		child string // started in the background by the command; writes its pid to $PID
		lose  bool   // pause a majority of masters: the lease is lost
		code  int
		msg   string
	}{
		{"lease lost, grandchild ignores SIGTERM", `sh -c 'trap "" TERM; echo $$ > "$PID"; ` + ticker + `'`, true, 122, "still running 500ms after SIGTERM: SIGKILL"},
		{"lease lost, grandchild left the group", `setsid sh -c 'trap "" TERM; echo $$ > "$PID"; ` + ticker + `'`, true, 122, "still running 500ms after SIGTERM: SIGKILL"},
		{"command exits, nohup grandchild", `nohup sh -c 'echo $$ > "$PID"; ` + ticker + `'`, false, 0, "sh exited; ending the processes it left running"},
		{"command exits, grandchild left the group and ignores SIGTERM", `setsid sh -c 'trap "" TERM; echo $$ > "$PID"; ` + ticker + `'`, false, 0, "still running 500ms after SIGTERM: SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			servers, nodes := startMasters(t, 3)
			dir := t.TempDir()
			log, pidFile := filepath.Join(dir, "log"), filepath.Join(dir, "pid")
			// The grandchild's output goes elsewhere, so that distlock's
			// pipes close when distlock exits even if it outlives it.
			script := tc.child + ` >/dev/null 2>&1 & while [ ! -s "$PID" ]; do sleep 0.01; done; echo ready`
			if tc.lose {
				script += "; wait"
			}
			cmd := distlockCmd(t, nodes, "run", "--ttl", "1s", "--grace", "500ms", "descendants", "--", "sh", "-c", script)
			cmd.Env = append(cmd.Env, "LOG="+log, "PID="+pidFile)
			stdout, stderr, wait := background(t, cmd)
			waitLine(t, stdout, "ready")
			grandchild := readPid(t, pidFile)
			t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })
			if tc.lose {
				redistest.PauseUntilEnd(t, servers[:2]...)
			}
			var errText strings.Builder
			for line := range stderr {
				errText.WriteString(line + "\n")
			}
			if code := wait(); code != tc.code {
				t.Errorf("exit status %d; want %d", code, tc.code)
			}
			if alive(grandchild) || stillWriting(t, log) {
				t.Errorf("process %d the command started still runs after distlock exited", grandchild)
			}
			if !strings.Contains(errText.String(), tc.msg) {
				t.Errorf("stderr %q; want it to contain %q", errText.String(), tc.msg)
			}
		})
	}
}

// TestRunDistlockDies: when distlock itself gets SIGQUIT, it passes it on
// like SIGTERM instead of dying with a stack dump; when it is killed
// (SIGKILL), the kernel kills the command.
func TestRunDistlockDies(t *testing.T) {
	_, nodes := startMasters(t, 3)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{
		{syscall.SIGQUIT, 128 + int(syscall.SIGQUIT)},
		{syscall.SIGKILL, -1},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "log")
			cmd := distlockCmd(t, nodes, "run", "dies", "--", "sh", "-c", `echo "ready $$"; `+ticker)
			cmd.Env = append(cmd.Env, "LOG="+log)
			stdout, stderr, wait := background(t, cmd)
			child := killOnCleanup(t, waitLine(t, stdout, "ready"))
			cmd.Process.Signal(tc.sig)
			// The command's end first: until then it holds distlock's
			// stderr open.
			waitFor(t, "the command gone", func() bool { return !alive(child) })
			var errText strings.Builder
			for line := range stderr {
				errText.WriteString(line + "\n")
			}
			if code := wait(); code != tc.code {
				t.Errorf("exit status %d; want %d\nstderr: %s", code, tc.code, errText.String())
			}
			if strings.Contains(errText.String(), "goroutine") {
				t.Errorf("distlock printed a stack dump:\n%s", errText.String())
			}
			if stillWriting(t, log) {
				t.Errorf("the command still writes after distlock got %v", tc.sig)
			}
		})
	}
}
