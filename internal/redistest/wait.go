package redistest

import (
	"fmt"
	"time"
)

// waitFor polls cond until it returns nil, or fails after timeout with
// cond's last error.
func waitFor(timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: no %s after %v: %w", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
