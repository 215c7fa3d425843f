package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUseCtrlZWhileWaiting: Ctrl-Z while distlock run still waits for a
// lock held by another, fg, then the holder releases: the command runs
// and gets the terminal (it reads what is typed).
func TestUseCtrlZWhileWaiting(t *testing.T) {
	_, nodes := startMasters(t, 3)
	l := hold(t, nodes, "zwait")
	cmd := shell(t, nodes, `set -m
"$DISTLOCK" run zwait -- sh -c 'echo ready; read x; echo "got $x"'
s=$?; n=0
while [ $s = 147 ] || [ $s = 148 ]; do n=$((n+1)); echo "distlock stopped #$n: $s"; read x; fg >/dev/null; s=$?; done
echo "distlock ended: $s"
read x`)
	term := startInTerminal(t, cmd)
	time.Sleep(1500 * time.Millisecond) // waiting
	term.type_(t, "\x1a")
	term.waitFor(t, "distlock stopped #1: 14", 5*time.Second)
	term.type_(t, "\n") // fg
	time.Sleep(500 * time.Millisecond)
	l.Release(t.Context())
	term.waitFor(t, "ready", 10*time.Second)
	term.type_(t, "hello\n")
	term.waitFor(t, "got hello", 5*time.Second)
	term.waitFor(t, "distlock ended: 0", 5*time.Second)
	if strings.Contains(term.text(), "stopped again after fg") {
		t.Errorf("after bg then fg, the command's read of the terminal stopped the job again; the terminal showed:\n%s", term.text())
	}
}

// TestUseCtrlZFgKeepsTerminal: Ctrl-Z then fg while the lease holds: the
// command continues and still reads the terminal.
func TestUseCtrlZFgKeepsTerminal(t *testing.T) {
	_, nodes := startMasters(t, 3)
	cmd := shell(t, nodes, `set -m
"$DISTLOCK" run zfg -- sh -c 'echo ready; read x; echo "got $x"; read y; echo "got2 $y"'
s=$?; n=0
while [ $s = 147 ] || [ $s = 148 ]; do n=$((n+1)); echo "distlock stopped #$n: $s"; read x; fg >/dev/null; s=$?; done
echo "distlock ended: $s"
read x`)
	term := startInTerminal(t, cmd)
	term.waitFor(t, "ready", 10*time.Second)
	term.type_(t, "\x1a")
	term.waitFor(t, "distlock stopped #1: 14", 5*time.Second)
	term.type_(t, "\n") // fg
	time.Sleep(300 * time.Millisecond)
	term.type_(t, "one\n")
	term.waitFor(t, "got one", 5*time.Second)
	term.type_(t, "\x1a")
	term.waitFor(t, "distlock stopped #2: 14", 5*time.Second)
	term.type_(t, "\n") // fg again
	time.Sleep(300 * time.Millisecond)
	term.type_(t, "two\n")
	term.waitFor(t, "got2 two", 5*time.Second)
	term.waitFor(t, "distlock ended: 0", 5*time.Second)
	if strings.Contains(term.text(), "stopped again after fg") {
		t.Errorf("after bg then fg, the command's read of the terminal stopped the job again; the terminal showed:\n%s", term.text())
	}
}

// TestUseCtrlZBg: found by the use tester. Ctrl-Z, then bg: the command
// runs on in the background holding the lock (this holds: its log grows,
// past two TTLs, and nobody else gets the lock); then fg, and the command
// reads the terminal. As with a shell's job, it should just read what is
// typed. Instead the shell's fg hands the terminal to distlock's group
// and sends SIGCONT, which distlock (running, not inside suspend) ignores:
// the command's group never gets the foreground, its read gets SIGTTIN,
// and distlock stops again (the shell shows the job stopped right after
// fg: "stopped again after fg: 147"); only a second fg works. Outside a
// test the user sees "Stopped" for no reason after typing fg.
//
// Proposed fix (job_unix.go, supervise): watch SIGCONT for the whole
// job, not only inside suspend; on each, when the terminal's foreground is
// distlock's own group and the job is not ending, setForeground(j.tty,
// j.pid) (what suspend does after its own stop). Also, in suspend, a
// SIGTTIN/SIGTTOU while distlock is itself in the foreground should hand
// the terminal over and continue the job rather than stop distlock.
func TestUseCtrlZBg(t *testing.T) {
	_, nodes := startMasters(t, 3)
	log := filepath.Join(t.TempDir(), "log")
	cmd := shell(t, nodes, `set -m
"$DISTLOCK" run --ttl 1s zbg -- sh -c 'echo ready; i=0; while [ $i -lt 150 ]; do echo tick >> "$LOG"; sleep 0.02; i=$((i+1)); done; echo "reading"; read x; echo "got $x"'
echo "distlock stopped: $?"
bg >/dev/null
echo "in background"
read x
fg >/dev/null; s=$?
if [ $s = 147 ] || [ $s = 148 ]; then echo "stopped again after fg: $s"; fg >/dev/null; s=$?; fi
echo "distlock ended: $s"
read x`)
	cmd.Env = append(cmd.Env, "LOG="+log)
	term := startInTerminal(t, cmd)
	term.waitFor(t, "ready", 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	term.type_(t, "\x1a")
	term.waitFor(t, "in background", 5*time.Second)
	if !stillWriting(t, log) {
		t.Fatalf("the command does not run after bg; the terminal showed:\n%s", term.text())
	}
	time.Sleep(2 * time.Second) // two TTLs
	if r := run(t, nodes, "run", "--try", "zbg", "--", "true"); r.code != 124 {
		t.Fatalf("lock taken by another while the bg job held it: exit %d %s", r.code, r.stderr)
	}
	term.type_(t, "\n") // fg
	term.waitFor(t, "reading", 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	term.type_(t, "hello\n")
	term.waitFor(t, "got hello", 5*time.Second)
	term.waitFor(t, "distlock ended: 0", 5*time.Second)
	if strings.Contains(term.text(), "stopped again after fg") {
		t.Errorf("after bg then fg, the command's read of the terminal stopped the job again; the terminal showed:\n%s", term.text())
	}
}
