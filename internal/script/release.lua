-- release.lua: delete the lock key only if it still holds this lease's value.
--
-- KEYS[1]  lock key
-- ARGV[1]  lease value
-- ARGV[2]  optional: another value of the same lease's, also deleted (a
--          local handoff that failed may have given the key a next value
--          on some masters before it was abandoned: handoff.go)
--
-- Returns 1 when deleted, 0 when the key is gone (expired or deleted), -1
-- when another value holds it: Release tells a lease whose keys a majority
-- no longer held (lost before it was released) from one it released.
-- When it deletes, it first publishes "del 0 <value>" on the lock's watch
-- channel, as acquire.lua does.
local v = redis.call('GET', KEYS[1])
if v ~= false and (v == ARGV[1] or (ARGV[2] ~= nil and ARGV[2] ~= '' and v == ARGV[2])) then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. v)
  return redis.call('DEL', KEYS[1])
end
if v == false then
  return 0
end
return -1
