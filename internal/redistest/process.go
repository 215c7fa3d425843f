package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// launch starts redis-server on s.port and waits until it is ready. It
// returns an error wrapping errAddrInUse if the process exited because the
// port was taken. On any error the process has been reaped.
//
// The caller must hold s.mu, or own s exclusively (as Start does).
func (s *Server) launch() error {
	logPath := filepath.Join(s.dir, logName)
	// Remember where this run's log starts: the log file is shared by all
	// runs, and only this run's lines say why it failed.
	var logOffset int64
	if fi, err := os.Stat(logPath); err == nil {
		logOffset = fi.Size()
	}
	// stdout/stderr go to a file rather than a pipe: an *os.File needs no
	// copying goroutine, and a pipe could keep Wait blocked if redis ever
	// forked a child that inherited it.
	out, err := os.Create(filepath.Join(s.dir, outName))
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(s.path, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	out.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("redistest: starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		// Reap the process as soon as it exits, so that it never lingers
		// as a zombie and done tells everyone whether it is running.
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.paused = cmd, done, false

	if err := s.waitReady(cmd.Process.Pid, done); err != nil {
		killGroup(cmd.Process)
		<-done
		log := s.logTail(logPath, logOffset)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("redistest: redis-server on %s: %w", s.addr, errAddrInUse)
		}
		return fmt.Errorf("redistest: redis-server on %s: %v; log:\n%s", s.addr, err, log)
	}
	return nil
}

// waitReady polls the server until it answers PING and proves to be the
// process with the given pid. The pid check matters because, if our
// process lost the race for the port, another test's server may be the
// one answering on it.
func (s *Server) waitReady(pid int, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	var lastErr error
	for {
		select {
		case <-done:
			return errors.New("exited during startup")
		default:
		}
		// PING, unlike INFO, fails with -LOADING while the append-only
		// file is being replayed, so a PONG means data is available.
		reply, err := s.Do("PING")
		if err == nil && reply != "PONG" {
			err = fmt.Errorf("PING replied %q", reply)
		}
		if err == nil {
			reply, err = s.Do("INFO", "server")
			if err == nil && !strings.Contains(reply, want) {
				err = fmt.Errorf("another process answers on %s", s.addr)
			}
		}
		if err == nil {
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING after %v (last error: %v)", startTimeout, lastErr)
		}
		time.Sleep(pollInterval)
	}
}

// logTail returns the last lines of the log written since offset, followed
// by anything the process printed to stdout/stderr.
func (s *Server) logTail(logPath string, offset int64) string {
	var parts []string
	if data, err := os.ReadFile(logPath); err == nil && int64(len(data)) >= offset {
		if log := strings.TrimSpace(string(data[offset:])); log != "" {
			lines := strings.Split(log, "\n")
			if len(lines) > logTailLines {
				lines = lines[len(lines)-logTailLines:]
			}
			parts = append(parts, strings.Join(lines, "\n"))
		}
	}
	if data, err := os.ReadFile(filepath.Join(s.dir, outName)); err == nil {
		if out := strings.TrimSpace(string(data)); out != "" {
			parts = append(parts, "stdout/stderr:\n"+out)
		}
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, "\n")
}

// running reports whether the current process is alive. s.mu must be held.
func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// alive reports whether s's process is running.
func (s *Server) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running()
}

// Kill kills the server with SIGKILL, as a crash or power loss would, and
// waits for the process to be reaped. Killing a server that is not running
// does nothing. A paused server is resumed first so that it never lingers
// in the stopped state.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kill()
}

// kill implements Kill. s.mu must be held.
func (s *Server) kill() error {
	if !s.running() {
		s.paused = false
		return nil
	}
	if s.paused {
		contGroup(s.cmd.Process)
		s.paused = false
	}
	// An error here means the process is already exiting on its own; the
	// wait below covers that case too.
	killGroup(s.cmd.Process)
	<-s.done
	return nil
}

// Pause freezes the server with SIGSTOP. Its port keeps accepting
// connections, which the kernel queues, but nothing is answered: to a
// client this looks like a network partition or a long GC pause, so
// requests time out instead of failing fast.
func (s *Server) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return s.notRunning("pause")
	}
	if err := stopGroup(s.cmd.Process); err != nil {
		return fmt.Errorf("redistest: pausing %s: %w", s.addr, err)
	}
	s.paused = true
	return nil
}

// PauseUntilEnd pauses servers (SIGSTOP) and resumes them when the test
// ends, before the test's Clients close (cleanups run last first).
func PauseUntilEnd(t TB, servers ...*Server) {
	t.Helper()
	for _, s := range servers {
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Resume() })
	}
}

// Resume lets a paused server continue with SIGCONT. Resuming a server
// that is running but not paused does nothing.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return s.notRunning("resume")
	}
	if !s.paused {
		return nil
	}
	if err := contGroup(s.cmd.Process); err != nil {
		return fmt.Errorf("redistest: resuming %s: %w", s.addr, err)
	}
	s.paused = false
	return nil
}

// notRunning returns the error for an operation that needs a live process.
func (s *Server) notRunning(op string) error {
	if s.stopped {
		return fmt.Errorf("redistest: cannot %s %s: server stopped", op, s.addr)
	}
	return fmt.Errorf("redistest: cannot %s %s: server not running", op, s.addr)
}

// Restart kills the server if it is running and starts it again on the
// same address, directory and options, then waits until it answers PING.
// The data survives only if the server is Persistent, which is how a
// Redis master with appendfsync always behaves after a crash.
//
// If the port is briefly in use, Restart retries for a few seconds; it
// cannot move to another port because clients know the old address.
func (s *Server) Restart() error {
	return s.restart(false)
}

// RestartEmpty is like Restart but deletes the data files (the append-only
// directory, dump.rdb and anything else except the logs) before starting,
// so the server comes back with no keys: a master that lost everything,
// the case Redlock's delayed-restart advice is about.
func (s *Server) RestartEmpty() error {
	return s.restart(true)
}

func (s *Server) restart(empty bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.notRunning("restart")
	}
	if err := s.kill(); err != nil {
		return err
	}
	if empty {
		if err := s.removeData(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(rebindTimeout)
	for {
		err := s.launch()
		if err == nil || !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeData deletes everything in the directory except the log files.
// Deleting by exclusion, rather than by name, also catches data files
// renamed through Args (--appenddirname, --dbfilename).
func (s *Server) removeData() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	for _, e := range entries {
		if e.Name() == logName || e.Name() == outName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			return fmt.Errorf("redistest: %w", err)
		}
	}
	return nil
}

// Stop kills the server and removes its directory. It is safe to call more
// than once; after Stop, only Stop, Kill, Addr and URL may be used.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	if err := s.kill(); err != nil {
		return err
	}
	s.stopped = true
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	return nil
}
