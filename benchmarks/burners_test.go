package benchmarks

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestBurners: burners burn CPU while they run, and none is left running
// (or as a zombie) once Stop returns.
func TestBurners(t *testing.T) {
	b, err := StartBurners(2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	pids := append([]int(nil), b.pids...)
	time.Sleep(300 * time.Millisecond)
	if cpu := b.cpu(); cpu < 100*time.Millisecond {
		t.Errorf("2 burners used %v of CPU in 300 ms, want at least 100 ms", cpu)
	}
	b.Stop()
	b.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("burner %d still there after Stop: kill -0 says %v", pid, err)
		}
	}
}
