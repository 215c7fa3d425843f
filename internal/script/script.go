// Package script holds the Lua scripts distlock runs on each master, and the
// helpers that send them.
//
// The scripts live in .lua files beside this one so that they can be read
// and reviewed as Lua; they are embedded at build time.
package script

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"strings"

	"github.com/redis/rueidis"
)

var (
	//go:embed acquire.lua
	acquireSrc string
	//go:embed release.lua
	releaseSrc string
	//go:embed renew.lua
	renewSrc string
	//go:embed fence.lua
	fenceSrc string
	//go:embed leave.lua
	leaveSrc string
	//go:embed handoff.lua
	handoffSrc string
)

// The scripts. None of them is marked retryable: a script whose reply was
// lost may still have run, and running acquire a second time would draw a
// second fencing counter behind the caller's back. (rueidis retries only
// commands marked retryable, and distlock also sets DisableRetry.)
//
// No script may depend on EVALSHA's fallback to EVAL (rueidis sends it
// when a master answers NOSCRIPT: a fresh or restarted master). The
// fallback is a second command, a trap twice over: it goes out after the
// first answer, so a release sent in between runs before the acquire it
// should undo; and if the caller has stopped waiting by then (a paused
// master answers late), it is never sent, so a release silently does
// nothing. Either way a lock key stays behind for a whole TTL. So:
//   - Acquire is sent as EVALSHA alone (ExecLoaded); on NOSCRIPT the
//     caller loads the script (Load) and sends it again itself, where it
//     can make later commands wait for that answer. Masters get it loaded
//     when first dialled.
//   - Release and Leave, small, are always sent as EVAL.
//   - Renew, Fence and Handoff keep the fallback: a lost renewal is
//     retried, a lost write-back fails the acquire, which then cleans up,
//     and a lost handoff only means a release instead (none of them sets a
//     lock key that was not there).
var (
	Acquire = New(acquireSrc)
	Release = NewNoSha(releaseSrc)
	Renew   = New(renewSrc)
	Fence   = New(fenceSrc)
	Leave   = NewNoSha(leaveSrc)
	Handoff = New(handoffSrc)
)

// Script is a Lua script with its SHA-1, sent as EVALSHA and, where a master
// answers NOSCRIPT (its script cache is empty after a restart), as EVAL.
type Script struct {
	lua *rueidis.Lua
	src string
	sha string
}

// New returns the script with source src.
func New(src string) *Script {
	sum := sha1.Sum([]byte(src))
	return &Script{lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(sum[:])}
}

// NewNoSha returns the script with source src, always sent as EVAL.
// Comment lines are dropped from what is sent.
func NewNoSha(src string) *Script {
	var b strings.Builder
	for _, line := range strings.Split(src, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	body := b.String()
	return &Script{lua: rueidis.NewLuaScriptNoSha(body), src: body}
}

// ExecLoaded runs the script once on c as EVALSHA alone, with no
// fallback: a master that does not have it answers NOSCRIPT (see
// rueidis.RedisError.IsNoScript) and runs nothing.
func (s *Script) ExecLoaded(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	return c.Do(ctx, c.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
}

// Cmd returns the command that runs the script once with keys and args,
// built with b: EVALSHA, or EVAL for a script made by NewNoSha. It is for
// callers that send it with other commands on one connection (a
// rueidis.DedicatedClient's DoMulti).
func (s *Script) Cmd(b rueidis.Builder, keys, args []string) rueidis.Completed {
	if s.sha == "" {
		return s.EvalCmd(b, keys, args)
	}
	return b.Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// EvalCmd returns the command that runs the script once as EVAL, with
// its whole source: what to send after a master answered Cmd NOSCRIPT.
func (s *Script) EvalCmd(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// ExecEval runs the script once on c as EVAL, with its whole source.
func (s *Script) ExecEval(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	return c.Do(ctx, s.EvalCmd(c.B(), keys, args))
}

// Load loads the script into c's script cache (SCRIPT LOAD). On a
// Cluster, where SCRIPT LOAD (it names no key) would go to one node
// picked at random, it loads it on every node the client knows, replicas
// too (one may be promoted), and fails only when none loaded it: then
// with an error reply where one came (such as NOPERM, which every node
// would give). A node's own state (BUSY running a long script, LOADING
// after a restart) must not fail a load that others did: the caller then
// sends EVAL, which caches the script where it runs.
func (s *Script) Load(ctx context.Context, c rueidis.Client) error {
	if c.Mode() != rueidis.ClientModeCluster {
		return c.Do(ctx, c.B().ScriptLoad().Script(s.src).Build()).Error()
	}
	nodes := c.Nodes()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- n.Do(ctx, n.B().ScriptLoad().Script(s.src).Build()).Error() }()
	}
	var first, refused error
	loaded := false
	for range nodes {
		err := <-errs
		switch _, isReply := rueidis.IsRedisErr(err); {
		case err == nil:
			loaded = true
		case isReply && refused == nil:
			refused = err
		case first == nil:
			first = err
		}
	}
	switch {
	case loaded:
		return nil
	case refused != nil:
		return refused
	}
	return first
}

// LoadCmd returns SCRIPT LOAD of the script, built with b, for a caller
// that sends it with other commands (a standalone master: a Cluster needs
// Load).
func (s *Script) LoadCmd(b rueidis.Builder) rueidis.Completed {
	return b.ScriptLoad().Script(s.src).Build()
}

// Exec runs the script once on c.
func (s *Script) Exec(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	return s.lua.Exec(ctx, c, keys, args)
}

// ExecMulti runs the script once for each call, pipelined on c, and returns
// one result per call, in order. Unlike rueidis's Lua.ExecMulti it sends no
// SCRIPT LOAD first: it sends EVALSHA and resends with EVAL only the calls
// that were answered NOSCRIPT, so the usual case is one round trip.
func (s *Script) ExecMulti(ctx context.Context, c rueidis.Client, calls []rueidis.LuaExec) []rueidis.RedisResult {
	cmds := make(rueidis.Commands, len(calls))
	for i, call := range calls {
		if s.sha == "" {
			cmds[i] = c.B().Eval().Script(s.src).Numkeys(int64(len(call.Keys))).Key(call.Keys...).Arg(call.Args...).Build()
		} else {
			cmds[i] = c.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(call.Keys))).Key(call.Keys...).Arg(call.Args...).Build()
		}
	}
	results := c.DoMulti(ctx, cmds...)
	if s.sha == "" {
		return results
	}
	var again []int
	for i, r := range results {
		if err, ok := rueidis.IsRedisErr(r.Error()); ok && err.IsNoScript() {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return results
	}
	cmds = cmds[:0]
	for _, i := range again {
		call := calls[i]
		cmds = append(cmds, c.B().Eval().Script(s.src).Numkeys(int64(len(call.Keys))).Key(call.Keys...).Arg(call.Args...).Build())
	}
	for j, r := range c.DoMulti(ctx, cmds...) {
		results[again[j]] = r
	}
	return results
}
