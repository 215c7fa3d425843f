-- fence.lua: raise a fence counter to at least a token's counter (write-back).
--
-- KEYS[1]  fence counter
-- ARGV[1]  counter value the new lease's token carries
--
-- Returns the counter after the write, which is >= ARGV[1]. It never lowers
-- a counter, so running it twice, late, or after another INCR is harmless.
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(ARGV[1])
if c < t then
  redis.call('SET', KEYS[1], ARGV[1])
  return t
end
return c
