package distlock

import (
	"context"
	"errors"
	"time"
)

// Do acquires the lock name (waiting as Acquire does), runs fn with the
// lease and a context that is cancelled the moment the lease ends, and
// releases the lease when fn returns, whatever it returns, and when fn
// panics (the panic then continues). context.Cause of fn's context says why
// it was cancelled: an error wrapping ErrLeaseLost when the lease was lost.
//
// Do returns the error of acquiring when it could not acquire, else fn's
// error, joined with the lease's error when the lease was lost while fn
// ran (errors.Is(err, ErrLeaseLost)) or ended because the Client was
// closed (errors.Is(err, ErrClosed): Close releases the lease and cancels
// fn's context, and does not wait for fn to return), and with Release's
// error when the keys could not be deleted.
func (c *Client) Do(ctx context.Context, name string, fn func(ctx context.Context, l *Lease) error, opts ...Option) (err error) {
	if fn == nil {
		return errors.New("distlock: Do: nil function")
	}
	l, err := c.Acquire(ctx, name, opts...)
	if err != nil {
		return err
	}
	lctx, cancel := l.Context(ctx)
	defer cancel()
	defer func() {
		lost := l.Err() // before Release turns it into ErrReleased
		// Release with a fresh context: ctx may be the reason fn returned,
		// and the keys should go now, not when their TTL runs out.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		rerr := l.Release(rctx)
		rcancel()
		if isLost(lost) || errors.Is(lost, ErrClosed) {
			// Release's error repeats the loss, or the Client's close
			// (which released the lease); keep fn's error and that.
			err = errors.Join(err, lost)
			return
		}
		err = errors.Join(err, rerr)
	}()
	return fn(lctx, l)
}
