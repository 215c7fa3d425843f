-- release.lua: delete the lock key only if it still holds this lease's
-- value; where the answer to the lease's acquire never came, also leave a
-- tombstone ("bury" the value), so that the acquire, if it is still on its
-- way (in the send queue of a connection the client has since replaced),
-- is refused when it arrives (acquire.lua checks it).
--
-- KEYS[1]  lock key
-- KEYS[2]  optional: the value's tombstone (acquire.lua's KEYS[5])
-- ARGV[1]  lease value
-- ARGV[2]  optional ("" for none): another value of the same lease's, also
--          deleted (a local handoff that failed may have given the key a
--          next value on some masters before it was abandoned: handoff.go)
-- ARGV[3]  with KEYS[2]: how long the tombstone lasts, in milliseconds
--
-- Returns 1 when deleted, 0 when the key is gone (expired or deleted), -1
-- when another value holds it: Release tells a lease whose keys a majority
-- no longer held (lost before it was released) from one it released.
-- When it deletes, it first publishes "del 0 <value>" on the lock's watch
-- channel, as acquire.lua does.
if KEYS[2] then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
end
local v = redis.call('GET', KEYS[1])
if v ~= false and (v == ARGV[1] or (ARGV[2] ~= nil and ARGV[2] ~= '' and v == ARGV[2])) then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. v)
  return redis.call('DEL', KEYS[1])
end
if v == false then
  return 0
end
return -1
