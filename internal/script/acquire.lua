-- acquire.lua: take the lock on one master and draw a fencing counter.
--
-- KEYS[1]  lock key
-- KEYS[2]  fence counter of the lock key
-- KEYS[3]  waiting list: waiter ids of waiting acquires, by arrival (ZSET)
-- KEYS[4]  the same ids, by the time their registration lapses (ZSET)
-- KEYS[5]  this attempt's tombstone: when it exists, a clean-up has been
--          here for this value (release.lua, burying it), and this command arrives late
-- KEYS[6]  the ids of waiters that have finished (leave.lua): an acquire
--          of one, delivered late, never registers it again
-- KEYS[7]  optional: the fence counter where distlock before 0.9 kept it
--          (a custom key prefix): the counter is always raised above it
-- ARGV[1]  lease value (128 random bits, hex, then owner and metadata: owner.go), fresh per attempt
-- ARGV[2]  TTL in milliseconds (relative: the master's own clock counts it)
-- ARGV[3]  the waiter's place in line: its arrival time in milliseconds as
--          the earliest master that registered it said ("" when not known
--          yet: this master's own time is taken)
-- ARGV[4]  "1" when the caller waits (Acquire) and should join the list
-- ARGV[5]  how long a registration lasts without renewal, in milliseconds
-- ARGV[6]  a value whose key counts as free ("" for none): the value of a
--          lease the caller's Client has just released (the release's
--          delete may not have run here yet), or of the caller's own
--          previous attempt, which kept its keys (the tie-break, acquire.go)
-- ARGV[7]  the caller's waiter id: its place in the waiting list, the same
--          for all the attempts of one Acquire ("" for TryAcquire)
-- ARGV[8]  the counter in the token of ARGV[6]'s lease ("0" when ARGV[6]
--          never was a lease's): where this takes over a key that holds
--          ARGV[6], the counter it draws is above that one, as if the
--          release (release.lua) had run first
--
-- Returns {1, counter} when the key now holds ARGV[1]: it was free (or
-- held ARGV[6]), or it already held ARGV[1] (a duplicate of this command).
-- The counter is always a fresh INCR, so no two grants on one master ever
-- see the same number; but a counter another program set below 0 is left
-- as it was and answered as it is, which the caller refuses. Returns {0, pttl, behind, lapse, place} when another
-- value holds the key, and {0, 0, behind, lapse, place} when the key is
-- free but an earlier waiter is first in line; behind is 1 when someone
-- else is first in this master's line, and lapse then the milliseconds
-- until that one's place lapses unless it renews it (0 otherwise): a
-- waiter behind one that died tries again then. place is the caller's
-- arrival time in the line (0 when it is not in it): the caller passes the
-- earliest it was told as ARGV[3] from then on, so that every master ranks
-- it alike.
--
-- When it grants, it first publishes the new state on the lock's watch
-- channel, '__distlock__:' .. KEYS[1], for Watch (watch.go): "set <ttl>
-- <value>" before the SET, "expire <ttl> <value>" before re-asserting.
-- Published just before the write, so that on a watcher's connection the
-- message comes right before the keyspace events the write causes. pcall:
-- a user without rights on the channel (ACL) still gets the lock.
--
-- Every master keeps a waiting list, so that waiters of different Clients
-- take the lock in order of arrival whichever masters they can reach: a
-- free key goes only to the first in line (acquire.go, "Waiting for a held lock").
-- Waiters are ranked by their arrival time, which the caller carries from
-- master to master, so the masters agree on the order and never each
-- grant a different waiter for good. A waiter joins a list only when
-- refused, so an uncontended acquire costs nothing more than one more key
-- in the tombstone's EXISTS. A waiter that is granted renews its place: it may lose the other
-- masters and keep this one (the tie-break on master 0), and must not
-- lose its place meanwhile.
--
-- One EXISTS asks for the tombstone and the waiting list together: on the
-- uncontended path neither exists, and that one call is the only check.
-- Only when one of them exists is the tombstone asked for alone.
local queued = redis.call('EXISTS', KEYS[5], KEYS[3]) > 0
if queued and redis.call('EXISTS', KEYS[5]) == 1 then
  return {0, 0, 0, 0, 0}
end
local head, now
local function clock()
  if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
if queued then
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', clock())
  for _, w in ipairs(lapsed) do
    redis.call('ZREM', KEYS[3], w)
    redis.call('ZREM', KEYS[4], w)
  end
  head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
end
local v = redis.call('GET', KEYS[1])
local least = 0
if v ~= false and ARGV[6] ~= '' and v == ARGV[6] then
  v = false
  least = tonumber(ARGV[8]) or 0
end
if v == false and (head == nil or head == ARGV[7]) then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'set ' .. ARGV[2] .. ' ' .. ARGV[1])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif v == ARGV[1] then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'expire ' .. ARGV[2] .. ' ' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  local place = 0
  local done = ARGV[7] ~= '' and redis.call('ZSCORE', KEYS[6], ARGV[7])
  if ARGV[4] == '1' and ARGV[7] ~= '' and not (done and tonumber(done) > clock()) then
    -- Join the list at the caller's arrival time, or move up to it (another
    -- master registered the caller earlier), and renew the registration.
    place = clock()
    if ARGV[3] ~= '' then
      place = tonumber(ARGV[3])
    end
    local cur = redis.call('ZSCORE', KEYS[3], ARGV[7])
    if cur and tonumber(cur) <= place then
      place = tonumber(cur)
    else
      redis.call('ZADD', KEYS[3], place, ARGV[7])
    end
    redis.call('ZADD', KEYS[4], clock() + tonumber(ARGV[5]), ARGV[7])
    -- Only ever lengthen the lists' life: Clients may use other lapse times.
    if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[5]) then
      redis.call('PEXPIRE', KEYS[3], ARGV[5])
      redis.call('PEXPIRE', KEYS[4], ARGV[5])
    end
    head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  end
  local behind, lapse = 0, 0
  if head ~= nil and head ~= ARGV[7] then
    behind = 1
    local at = redis.call('ZSCORE', KEYS[4], head)
    if at then
      lapse = math.max(tonumber(at) - clock(), 0) + 1
    end
  end
  if v == false then
    return {0, 0, behind, lapse, place}
  end
  return {0, redis.call('PTTL', KEYS[1]), behind, lapse, place}
end
-- A waiter granted here stays in the list until its Acquire has won or
-- given up (leave.lua): it may still lose the other masters and keep this
-- one, and must stay first in line meanwhile; its place is renewed.
if head ~= nil and head == ARGV[7] then
  redis.call('ZADD', KEYS[4], clock() + tonumber(ARGV[5]), ARGV[7])
end
local c = redis.call('INCR', KEYS[2])
if c < 1 then
  -- Another program set the counter below 0: the caller refuses such a
  -- counter (checkCounter), and it must stay refused. INCR alone would
  -- walk it up to 1, and the next tokens would start again from there.
  redis.call('DECR', KEYS[2])
  return {1, c - 1} -- the counter as it is, for the caller's error
end
local raise = least > 0
if KEYS[7] then
  -- Tokens an older distlock drew for this prefix must stay below ours,
  -- whoever created the shared counter first.
  local old = tonumber(redis.call('GET', KEYS[7]) or '0') or 0
  least, raise = math.max(least, math.floor(old)), true
end
if raise and c <= least then
  c = redis.call('INCRBY', KEYS[2], least - c + 1)
end
return {1, c}
