-- leave.lua: take a waiting acquire off the waiting list (it won, or gave up).
--
-- KEYS[1]  waiting list by arrival; KEYS[2]  by lapse time
-- KEYS[3]  the lock key (only to name its watch channel)
-- ARGV[1]  the waiter's id (one per waiting Acquire, kept across its attempts)
--
-- When the waiter was first in line, it publishes "head 0 <id>" of the
-- new first on the lock's watch channel: Watch wakes only that waiter when
-- the lock comes free, instead of every waiter (retry.go).
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if first == ARGV[1] then
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if head then
    redis.pcall('PUBLISH', '__distlock__:' .. KEYS[3], 'head 0 ' .. head)
  end
end
return 1
