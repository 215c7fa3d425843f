-- handoff.lua: pass a held lock to the next holder in the same Client
-- (handoff.go): where the key still holds the holder's value, replace it
-- with the next holder's fresh value and TTL, and draw a fencing counter
-- for the next holder.
--
-- KEYS[1]  lock key
-- KEYS[2]  fence counter of the lock key
-- KEYS[3]  waiting list: waiter ids of waiting acquires, by arrival (ZSET)
-- KEYS[4]  the same ids, by the time their registration lapses (ZSET)
-- KEYS[5]  the next holder's tombstone (release.lua leaves it): when it exists, the
--          handoff failed and was cleaned up, and this command comes late
-- ARGV[1]  the holding lease's value
-- ARGV[2]  TTL in milliseconds for the next holder
-- ARGV[3]  "1" on master 0, where a waiter that won master 0 but not a
--          majority keeps its key (the tie-break, acquire.go), else "0"
-- ARGV[4]  the waiter id the holding lease waited under ("" if none): it
--          may still be in the list, about to leave it
-- ARGV[5]  the next holder's value (fresh: no command carrying it has had
--          an unknown outcome, so no late command of the holder's can touch
--          the next holder's key)
--
-- Returns {counter, 0} when the key held ARGV[1]: it now holds ARGV[5],
-- for ARGV[2] from now, and counter (INCR) is the next holder's alone.
-- Returns {0, 0} when the key does not hold ARGV[1] (gone, expired early,
-- or taken: nothing is written), and {0, 1} when a waiter of another
-- Client is first in this master's line, or, on master 0, holds the key
-- there (a waiter that won master 0, the tie-break, keeps its key there and
-- tries again): the lock should go to that waiter, not on within the
-- holder's Client. Every master keeps a line (acquire.lua), so a waiter
-- that cannot reach master 0 stops the handoffs too. The line is read
-- before the key, so a master says whether someone waits even when it no
-- longer holds the key.
--
-- On the lock's watch channel it publishes "del 0 <old>" and "set <ttl>
-- <new>", each before its write, as release.lua and acquire.lua do: to a
-- watcher one lease ends and the next begins.
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {0, 0}
end
local v = redis.call('GET', KEYS[1])
if ARGV[3] == '1' and v ~= false and v ~= ARGV[1] then
  return {0, 1}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- Registrations that lapsed (their waiter vanished) do not count.
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
  for _, w in ipairs(lapsed) do
    redis.call('ZREM', KEYS[3], w)
    redis.call('ZREM', KEYS[4], w)
  end
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if head ~= nil and head ~= ARGV[4] then
    return {0, 1}
  end
end
if v ~= ARGV[1] then
  return {0, 0}
end
redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. ARGV[1])
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'set ' .. ARGV[2] .. ' ' .. ARGV[5])
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[2])
local c = redis.call('INCR', KEYS[2])
if c < 1 then
  -- A counter another program set below 0 stays refused (acquire.lua),
  -- and is answered as it is: below 0, a counter no token can carry.
  redis.call('DECR', KEYS[2])
  c = c - 1
end
return {c, 0}
