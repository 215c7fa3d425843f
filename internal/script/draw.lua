-- draw.lua: draw fencing counters for the next holders of a lease's keys in
-- this Client (local handoffs: handoff.go), while the lease holds the lock.
--
-- KEYS[1]  lock key
-- KEYS[2]  fence counter of the lock key's hash slot
-- KEYS[3]  waiting list: values of waiting acquires, by arrival (ZSET)
-- KEYS[4]  the same values, by the time their registration lapses (ZSET)
-- ARGV[1]  the holding lease's value
-- ARGV[2]  "1" when this master keeps the waiting list (master 0), else "0"
-- ARGV[3]  how many counters to draw
--
-- Returns {0, 1} when this master keeps the waiting list and a waiter of
-- another Client is first in it, or holds the key here (a waiter that won
-- master 0, the tie-break, keeps its key there and tries again): nothing is
-- drawn, and the lock should go to that waiter, not on within the holder's
-- Client. Otherwise it returns {counter, 0} when the key holds ARGV[1]: the
-- counter is raised by ARGV[3] (INCRBY), and the counters from the old
-- value + 1 to the returned one are the caller's alone; and {0, 0} when the
-- key does not hold ARGV[1] (nothing drawn). The line is read first:
-- whether master 0 still holds the key or not, its answer says whether
-- someone waits.
--
-- It neither writes the key nor publishes: the key keeps its value and
-- expiry, and a handoff is no change of the lock's state for Watch.
local v = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if v ~= false and v ~= ARGV[1] then
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
    if head ~= nil and head ~= ARGV[1] then
      return {0, 1}
    end
  end
end
if v ~= ARGV[1] then
  return {0, 0}
end
return {redis.call('INCRBY', KEYS[2], ARGV[3]), 0}
