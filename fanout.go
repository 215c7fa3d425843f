package distlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// reply is one master's answer in a fan-out.
type reply struct {
	node int
	res  rueidis.RedisResult
	err  error // the master could not be asked, or answered with an error
}

// fanout sends one command to the masters marked in only (every master
// when only is nil) at once, each in its own goroutine, all under one
// timeout, and returns a channel that receives one reply per master, in
// the order they come, and how many will come. The channel is buffered:
// the caller may stop reading early; the goroutines still end, each within
// timeout. The caller must be between enter and exit.
func (c *Client) fanout(ctx context.Context, timeout time.Duration, only []bool, send func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult) (<-chan reply, int) {
	replies, count, _ := c.fanoutWith(ctx, timeout, only, send, false)
	return replies, count
}

// fanoutSent is fanout that also returns a channel closed once every
// master's goroutine has returned: each command then went out on its
// master's connection, or never will, so a command sent after it on that
// connection arrives after it.
func (c *Client) fanoutSent(ctx context.Context, timeout time.Duration, only []bool, send func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult) (<-chan reply, int, <-chan struct{}) {
	return c.fanoutWith(ctx, timeout, only, send, true)
}

// fanoutWith is fanoutSent, whose channel sent is made only when
// wantSent (nil otherwise): fanout's callers do not read it.
func (c *Client) fanoutWith(ctx context.Context, timeout time.Duration, only []bool, send func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult, wantSent bool) (<-chan reply, int, <-chan struct{}) {
	var sent chan struct{}
	if wantSent {
		sent = make(chan struct{})
	}
	count := 0
	for i := range c.nodes {
		if only == nil || only[i] {
			count++
		}
	}
	replies := make(chan reply, count)
	if count == 0 {
		if sent != nil {
			close(sent)
		}
		return replies, 0, sent
	}
	// One deadline for all masters: they start together. The last
	// goroutine to finish releases it.
	f := &fan{c: c, ctx: ctx, timeout: timeout, send: send, replies: replies, sent: sent}
	if cannotEnd(ctx) {
		// The usual case (context.Background, or Release's context
		// without its cancel): a deadline of f's own does what
		// context.WithTimeout does, for fewer allocations.
		f.dl.start(ctx, time.Now().Add(timeout))
		f.nctx = &f.dl
	} else {
		f.nctx, f.cancel = withTimeout(ctx, timeout)
	}
	f.left.Store(int32(count))
	k := 0
	for i := range c.nodes {
		if only == nil || only[i] {
			f.masters[k] = uint8(i)
			k++
		}
	}
	// As spawn, with one closure for all: each goroutine takes the next
	// master of f.masters.
	start := f.start
	for range count {
		c.wg.Add(1)
		go start()
	}
	return replies, count, sent
}

// fan is one fanoutSent: what its goroutines share.
type fan struct {
	ctx     context.Context    // the caller's
	nctx    context.Context    // ctx with the per-master timeout: &dl, or from withTimeout
	cancel  context.CancelFunc // nctx's from withTimeout; nil for &dl
	dl      deadlineCtx
	timeout time.Duration
	send    func(ctx context.Context, node int, rc rueidis.Client) rueidis.RedisResult
	replies chan reply
	sent    chan struct{} // nil unless wanted (fanoutWith)
	left    atomic.Int32  // goroutines still running
	c       *Client
	masters [MaxNodes]uint8 // the masters to ask, in order
	next    atomic.Int32    // goroutines started: the next takes masters[next]
}

// start runs in each of f's goroutines: it asks the next master of
// f.masters.
func (f *fan) start() {
	i := int(f.masters[f.next.Add(1)-1])
	f.run(&f.c.wg, i, f.c.nodes[i])
}

// run asks master i (n) and sends its reply; the last goroutine to finish
// releases the deadline and closes sent.
func (f *fan) run(wg *sync.WaitGroup, i int, n *node) {
	defer wg.Done()
	defer func() {
		if f.left.Add(-1) == 0 {
			if f.cancel != nil {
				f.cancel()
			} else {
				f.dl.stop()
			}
			if f.sent != nil {
				close(f.sent)
			}
		}
	}()
	rc, err := n.get()
	if err != nil {
		f.replies <- reply{node: i, err: &NodeError{Addr: n.addr, Err: err}}
		return
	}
	res := f.send(f.nctx, i, rc)
	r := reply{node: i, res: res}
	err = res.Error()
	if err != nil {
		if f.ctx.Err() == nil {
			err = ownTimeout(err, f.timeout)
		}
		r.err = &NodeError{Addr: n.addr, Err: err}
	}
	if f.ctx.Err() == nil {
		n.observe(err)
	}
	f.replies <- r
}

// ownTimeout returns err, unless it is the end of one of the Client's own
// timeouts of d (a per-master or dial timeout, not the caller's context):
// then an error saying so, which does not match context.DeadlineExceeded,
// since callers take that for their own deadline.
func ownTimeout(err error, d time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		if d > time.Millisecond {
			d = d.Round(time.Millisecond) // a renewal's wait is what is left of a validity
		}
		return fmt.Errorf("no answer within %v", d)
	}
	return err
}

// withTimeout is context.WithTimeout, for a cancel that the last of
// several goroutines calls (which go vet's lostcancel check cannot follow).
// Under a fan-out's own deadline (deadlineCtx) it nests another, for
// fewer allocations, with the same deadline and errors.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.(*deadlineCtx); ok {
		sub := dl.within(d)
		return sub, sub.stop
	}
	return context.WithTimeout(ctx, d)
}

// withoutCancel is context.WithoutCancel, without its allocation when ctx
// can never be cancelled and has no deadline (context.Background, say):
// ctx itself then behaves the same.
func withoutCancel(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		if _, ok := ctx.Deadline(); !ok {
			return ctx
		}
	}
	return context.WithoutCancel(ctx)
}

// cannotEnd reports whether ctx can never be done: no cancel, no deadline.
func cannotEnd(ctx context.Context) bool {
	if ctx.Done() != nil {
		return false
	}
	_, ok := ctx.Deadline()
	return !ok
}

// deadlineCtx is context.WithDeadline of a parent that can never end
// (cannotEnd), with stop as its cancel: done at the deadline
// (DeadlineExceeded) or when stopped (Canceled), whichever comes first.
// It costs a channel and a timer, where context.WithTimeout also
// allocates the context and its cancel func; one can live inside a
// struct made anyway (fan).
type deadlineCtx struct {
	context.Context // the parent, for Value
	deadline        time.Time
	done            chan struct{}
	timer           *time.Timer
	mu              sync.Mutex
	err             error
}

// start makes c parent's copy that ends at d. Call it once, before c is
// shared.
func (c *deadlineCtx) start(parent context.Context, d time.Time) {
	c.Context, c.deadline, c.done = parent, d, make(chan struct{})
	dur := time.Until(d)
	if dur <= 0 {
		c.end(context.DeadlineExceeded) // already past
		return
	}
	c.mu.Lock()
	c.timer = time.AfterFunc(dur, c.expire)
	c.mu.Unlock()
}

// within returns a child of c that also ends d from now: as
// context.WithTimeout(c, d), c never being cancelled before the child is
// stopped. Stop it when done with it.
func (c *deadlineCtx) within(d time.Duration) *deadlineCtx {
	child := &deadlineCtx{}
	at := time.Now().Add(d)
	if c.deadline.Before(at) {
		at = c.deadline
	}
	child.start(c.Context, at)
	return child
}

func (c *deadlineCtx) expire() { c.end(context.DeadlineExceeded) }

// stop releases c's timer and ends it, as a cancel func does.
func (c *deadlineCtx) stop() {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.end(context.Canceled)
}

func (c *deadlineCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
}

// Deadline, Done and Err implement context.Context.
func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Done() <-chan struct{}       { return c.done }
func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
