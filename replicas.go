package distlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/distlock/distlock/internal/script"
)

// Waiting for replicas (Config.FenceReplicas).
//
// A master that is a Sentinel-managed group or a Cluster shard replicates
// asynchronously: it answers a script before its replicas have the writes,
// and a failover to a replica that had not received them loses them. When
// the lost write is a fence counter's INCR, the new primary's counter is
// lower than a token already handed out, and the next lease that draws on
// it can get a token that is not larger (without FenceReplicas:
// TestSentinelTokensAcrossLossyFailover).
//
// With FenceReplicas n > 0, every script that draws or raises a counter
// before a token is handed out (acquire.lua, handoff.lua, the write-back's
// fence.lua) is followed, on the
// same connection, by WAIT n <ms>: Redis answers it once n replicas have
// acknowledged every write that connection made, which includes the
// script's; or, after <ms>, with how many did. A master whose script drew
// or raised a counter but whose WAIT counts fewer than n is answered as
// failed, with an error wrapping ErrNotReplicated: its grant counts for no
// majority, and the attempt cleans it up as it does a master whose answer
// never came (cleanup.go: its key is deleted and its value buried). So a
// token is handed out only when a majority of masters holds a counter >= it
// on n replicas as well as on the primary, and a failover to one of those
// replicas keeps it (Sentinel and Cluster promote the replica that is
// furthest along). A write-back that finds the counter already high enough
// writes nothing that WAIT would cover: it also sends INCRBY counter 0, a
// write that replicates, so that WAIT covers whatever raised the counter.
//
// WAIT must run on the connection that ran the script: it counts that
// connection's writes only (on a fresh connection it answers at once,
// whatever the replicas have). rueidis sends a blocking command such as
// WAIT on a pooled connection of its own, not the master's pipelined one,
// and a DoMulti that holds one sends all its commands there, in order: so
// the script, and WAIT after it, go in one DoMulti. On a Cluster a
// DoMulti would follow a MOVED or ASK for the script alone, to another
// node, and WAIT would count the first node's connection: there they go
// through rueidis's Dedicated client instead, which is pinned to the
// slot's node and follows no redirect (it answers MOVED, and the master
// counts as failed for that attempt; rueidis refreshes its map of the
// slots meanwhile). Releasing a Dedicated connection costs a round trip
// more (rueidis unsubscribes it). The script then runs on a connection
// other than the master's pipelined one, like the command of a connection
// rueidis has replaced: the clean-ups already wait for its answer, and
// bury the value where it never came (docs/design.md, "Commands that
// arrive late").
//
// The timeout of WAIT is what is left of the per-master timeout when it
// is sent, less 110 ms, at least 1 ms: Redis answers a WAIT that timed out
// only at its next timer tick (100 ms apart at the default hz 10), and
// should answer with a count before the Client stops waiting. With a
// per-master timeout below about 250 ms (NodeTimeout, or a tenth of a
// short TTL) a lagging replica's master may give no answer instead of
// ErrNotReplicated: it counts as failed either way. The cost is the replica's round trip on
// every acquire, and a connection per acquire in flight to each master
// (BenchmarkFenceReplicas). With FenceReplicas 0, nothing of this is sent:
// the commands are those of a Client without the option.

// A release's raise of the counter (release.lua, fencing.go "A released key
// leaves its counter behind") is not waited for: the key is gone whatever
// the replicas say, and a release must not fail on them. A failover right
// after it can lose the raise, and with it the handout order of tokens in
// the interleaving it is for (docs/safety.md); the promise that an Acquire
// begun after a lease was handed out gets a larger token does not rest on
// it.
//
// ErrNotReplicated is the error of a master that drew or raised a fence
// counter but whose replicas did not acknowledge it in time
// (Config.FenceReplicas). It appears in a QuorumError's Errs; that master
// counted as failed.
var ErrNotReplicated = errors.New("distlock: fence counter not acknowledged by enough replicas")

// execFenced runs s once on rc followed, on the same connection, by WAIT
// (see above), and returns the script's reply; or, when drew says that
// reply drew or raised a fence counter and fewer than FenceReplicas
// replicas acknowledged it, or WAIT was not answered, an error result.
// With fallback, a NOSCRIPT answer is followed by EVAL and WAIT again, as
// s.Exec does; without, it is returned. When sync names the fence counter,
// INCRBY sync 0 goes between the script and WAIT (the write-back).
func (c *Client) execFenced(ctx context.Context, node int, rc rueidis.Client, s *script.Script, keys, args []string, fallback bool, sync string, drew func(rueidis.RedisResult) bool) rueidis.RedisResult {
	want := int64(c.cfg.fenceReplicas)
	var wait time.Duration
	var res rueidis.RedisResult
	var acked int64
	var werr error
	send := func(b rueidis.Builder, doMulti func(...rueidis.Completed) []rueidis.RedisResult) {
		run := func(cmd rueidis.Completed) {
			wait = fenceWait(ctx, c.cfg.nodeTimeout)
			var cmds []rueidis.Completed
			// The pooled connection tracks no keys (lease_events.go,
			// untrack). Its answer is not read: were it refused, the
			// messages would come twice, which costs reads, never a
			// change missed.
			if off, ok := c.untrack(node, b); ok {
				cmds = append(cmds, off)
			}
			first := len(cmds)
			cmds = append(cmds, cmd)
			if sync != "" {
				cmds = append(cmds, b.Incrby().Key(sync).Increment(0).Build())
			}
			cmds = append(cmds, b.Wait().Numreplicas(want).Timeout(wait.Milliseconds()).Build())
			rs := doMulti(cmds...)
			res, werr = rs[first], nil
			if sync != "" {
				if err := rs[first+1].Error(); err != nil {
					werr = err
					return
				}
			}
			acked, werr = rs[len(rs)-1].AsInt64()
		}
		run(s.Cmd(b, keys, args))
		if re, ok := rueidis.IsRedisErr(res.Error()); fallback && ok && re.IsNoScript() {
			run(s.EvalCmd(b, keys, args))
		}
	}
	if rc.Mode() == rueidis.ClientModeCluster {
		rc.Dedicated(func(d rueidis.DedicatedClient) error {
			send(d.B(), func(cmds ...rueidis.Completed) []rueidis.RedisResult { return d.DoMulti(ctx, cmds...) })
			return nil
		})
	} else {
		send(rc.B(), func(cmds ...rueidis.Completed) []rueidis.RedisResult { return rc.DoMulti(ctx, cmds...) })
	}
	if res.Error() != nil || !drew(res) {
		return res
	}
	if werr != nil {
		return rueidis.NewErrorResult(fmt.Errorf("%w: WAIT after the script, which ran, failed: %w", ErrNotReplicated, werr))
	}
	if acked < want {
		return rueidis.NewErrorResult(fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, acked, want, wait))
	}
	return res
}

// fenceWait is the timeout of a WAIT sent under ctx: half of what is
// left of its deadline, at least 1 ms (WAIT 0 would wait for
// ever); without a deadline, fallback or DefaultNodeTimeout.
func fenceWait(ctx context.Context, fallback time.Duration) time.Duration {
	d := fallback
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl) - waitLateness
	} else if d <= 0 {
		d = DefaultNodeTimeout
	}
	return max(d.Truncate(time.Millisecond), time.Millisecond)
}

// waitLateness is how late Redis may answer a WAIT whose timeout passed:
// it ends blocked clients at its timer ticks, 1000/hz ms apart (100 ms at
// the default hz 10), plus a round trip (TestAdv10WaitTimeoutGranularity).
const waitLateness = 110 * time.Millisecond

// execCounter runs s on rc as s.Exec does or, with Config.FenceReplicas,
// as execFenced does, with fallback: for the scripts that keep rueidis's
// NOSCRIPT fallback (handoff.lua, fence.lua; see internal/script).
func (c *Client) execCounter(ctx context.Context, node int, rc rueidis.Client, s *script.Script, keys, args []string, sync string, drew func(rueidis.RedisResult) bool) rueidis.RedisResult {
	if c.cfg.fenceReplicas == 0 {
		return s.Exec(ctx, rc, keys, args)
	}
	return c.execFenced(ctx, node, rc, s, keys, args, true, sync, drew)
}

// notReplicated reports whether err is a master's answer that its
// replicas did not acknowledge a counter (execFenced): the script ran and
// answered, so nothing of it can arrive late, and the master is answering
// (an answer, not a silence, for node.observe).
func notReplicated(err error) bool { return errors.Is(err, ErrNotReplicated) }
