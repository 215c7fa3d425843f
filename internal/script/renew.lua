-- renew.lua: push each lock key's expiry out, only where it still holds
-- that lease's value. One call renews many leases (the renewer's batches),
-- each key on its own: what one key holds never changes another's answer.
--
-- KEYS[i]      lock key of lease i
-- ARGV[2i-1]   lease i's value
-- ARGV[2i]     lease i's new TTL in milliseconds
--
-- Returns one integer per key: 1 when renewed, 0 when the key is gone
-- (expired or deleted), -1 when another value, or a value of another
-- type, holds it. A GET refused for another reason fails the whole call,
-- as does an ACL that leaves one of KEYS out (Redis refuses such a call
-- before it runs): the caller then renews those leases one per call.
--
-- When it renews, it first publishes "expire <ttl> <value>" on the lock's
-- watch channel, as acquire.lua does.
local out = {}
for i = 1, #KEYS do
  local key, value, ttl = KEYS[i], ARGV[2 * i - 1], ARGV[2 * i]
  local v = redis.pcall('GET', key)
  if type(v) == 'table' and v.err and string.sub(v.err, 1, 9) ~= 'WRONGTYPE' then
    return redis.error_reply(v.err)
  end
  if v == value then
    redis.pcall('PUBLISH', '__distlock__:' .. key, 'expire ' .. ttl .. ' ' .. value)
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  elseif v == false then
    out[i] = 0
  else
    out[i] = -1 -- another value, or a value of another type (WRONGTYPE)
  end
end
return out
