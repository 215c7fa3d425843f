package distlock

import (
	"context"
	"testing"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/redistest"
)

// Two renewals of one lease on master 0 overlap in keyEvents: R1's answer
// is in (Lease.answered cleared inflight, so the renewer may send R2), but
// R1's goroutine has not reached renewedOn yet. R2's renewing resets the
// count (R1's echo E1 already counted) and R1's renewedOn then clears the
// bit R2 set and marks an echo that already came. Another program's DEL,
// reaching master 0 before R2, is swallowed by that mark.
func TestAdv17OverlappingRenewalsSwallowDelete(t *testing.T) {
	e, l, msg := adv17Lease(t)
	ls := []*Lease{l}
	idx := []int{0}

	e.renewing(0, ls, idx)              // R1 sent
	e.changed(0, msg)                   // E1: R1's echo, counted (n=1)
	e.renewing(0, ls, idx)              // R2 sent after answered(R1): n reset to 0
	e.renewedOn(0, ls, idx, []int64{1}) // R1 judged: landed, n=0 -> echo mark; R2's bit cleared
	e.changed(0, msg)                   // D: another program's DEL, before R2 lands
	if _, read := e.check[0].keys[l.req.key]; !read {
		t.Fatalf("D swallowed: no read queued on master 0 (echo=%b, renewCounting=%b)", e.echo[l.req.key], l.renewCounting)
	}
}

// Control: the same messages with one renewal at a time: D is read.
func TestAdv17OneRenewalReadsDelete(t *testing.T) {
	e, l, msg := adv17Lease(t)
	e.renewing(0, []*Lease{l}, []int{0})
	e.changed(0, msg)
	e.renewedOn(0, []*Lease{l}, []int{0}, []int64{1})
	e.changed(0, msg)
	if _, read := e.check[0].keys[l.req.key]; !read {
		t.Fatal("D not read")
	}
}

// adv17Lease returns keyEvents for 3 masters tracking one lease of
// distlock:x, and a key-change message naming that key (a master's reply
// to ECHO, the shape the tracking callback receives).
func adv17Lease(t *testing.T) (*keyEvents, *Lease, []rueidis.RedisMessage) {
	t.Helper()
	e := newKeyEvents(nil, 3)
	l := &Lease{req: &request{key: "distlock:x"}}
	e.byKey[l.req.key] = []*Lease{l}
	srv := redistest.StartN(t, 1, redistest.Options{})
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv[0].Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	m, err := rc.Do(context.Background(), rc.B().Echo().Message(l.req.key).Build()).ToMessage()
	if err != nil {
		t.Fatal(err)
	}
	return e, l, []rueidis.RedisMessage{m}
}
