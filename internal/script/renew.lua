-- renew.lua: push the lock key's expiry out, only if it still holds this lease's value.
--
-- KEYS[1]  lock key
-- ARGV[1]  lease value
-- ARGV[2]  new TTL in milliseconds
--
-- Returns 1 when renewed, 0 when the key is gone (expired or deleted),
-- -1 when another value holds it.
--
-- When it renews, it first publishes "expire <ttl> <value>" on the lock's
-- watch channel, as acquire.lua does.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'expire ' .. ARGV[2] .. ' ' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if v == false then
  return 0
end
return -1
