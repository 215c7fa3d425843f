//go:build !linux

package benchmarks

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child when its
// parent dies. Burners are still stopped by Burners.Stop.
func dieWithParent(*exec.Cmd) {}
