-- leave.lua: take a waiting acquire off the waiting list (it won, or gave up).
--
-- KEYS[1]  waiting list by arrival; KEYS[2]  by lapse time
-- KEYS[3]  the lock key (only to name its watch channel)
-- KEYS[4]  the ids of waiters that have finished (ZSET, by when that
--          record expires): acquire.lua never registers them again
-- ARGV[1]  the waiter's id (one per waiting Acquire, kept across its attempts)
-- ARGV[2]  "1" when the waiter has finished (won or gave up), "0" when it
--          only steps out of line for now (too few masters answered it)
-- ARGV[3]  how long the finished record lasts, in milliseconds: an acquire
--          of the finished waiter delivered late, over a connection that
--          was replaced, must not put it back in line
--          (TestAdv4LateAcquireRegistersGhostAfterLeave)
--
-- When the waiter was first in line, it publishes "head 0 <id>" of the
-- new first on the lock's watch channel: Watch wakes only that waiter when
-- the lock comes free, instead of every waiter (acquire.go).
--
-- Registrations that lapsed (their waiter vanished) go too, and the lists
-- live no longer than their last live registration: a dead waiter's place
-- is not kept alive by the leaving waiter's renewals.
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == '1' then
  for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', KEYS[4], w)
  end
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
  if redis.call('PTTL', KEYS[4]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[4], ARGV[3])
  end
end
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[1], w)
  redis.call('ZREM', KEYS[2], w)
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
  local left = math.max(math.floor(tonumber(last[2]) - now), 1)
  redis.call('PEXPIRE', KEYS[1], left)
  redis.call('PEXPIRE', KEYS[2], left)
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if head and head ~= first then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[3], 'head 0 ' .. head)
end
return 1
