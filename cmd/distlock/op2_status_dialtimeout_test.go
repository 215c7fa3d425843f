package main

import (
	"testing"
	"time"
)

// TestOp2StatusTimeoutURLDialTimeout: status --timeout "give up on
// masters that have not answered after this long". A master whose URL
// carries ?dial_timeout=4s, paused, holds status for those 4 s whatever
// --timeout says (--timeout 0.5 took 4.0 s), and its error is the bare
// "not connected yet", no reason. run -w honours its own bound with the
// same URL.
func TestOp2StatusTimeoutURLDialTimeout(t *testing.T) {
	servers, nodes := startMasters(t, 3)
	if err := servers[2].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { servers[2].Resume() })
	nodes[2] += "?dial_timeout=4s"
	r := run(t, nodes, "status", "--timeout", "0.5", "job")
	r.want(t, 0)
	if r.took > 2*time.Second {
		t.Errorf("status --timeout 0.5 took %v with a paused master whose URL says dial_timeout=4s; want about 0.5s\n%s", r.took, r.stdout)
	}
}
