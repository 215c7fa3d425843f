-- acquire.lua: take the lock on one master and draw a fencing counter.
--
-- KEYS[1]  lock key
-- KEYS[2]  fence counter of the lock key's hash slot
-- ARGV[1]  lease value (128 random bits, hex)
-- ARGV[2]  TTL in milliseconds (relative: the master's own clock counts it)
--
-- Returns {1, counter} when the key now holds ARGV[1]: it was free, or it
-- already held this same value (a retry of the same lease re-asserts it).
-- The counter is always a fresh INCR, so no two grants on one master ever
-- see the same number. Returns {0, pttl} when another value holds the key.
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  return {0, redis.call('PTTL', KEYS[1])}
end
return {1, redis.call('INCR', KEYS[2])}
