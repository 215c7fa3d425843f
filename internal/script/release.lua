-- release.lua: delete the lock key only if it still holds this lease's value.
--
-- KEYS[1]  lock key
-- ARGV[1]  lease value
--
-- Returns 1 when deleted, 0 when the key is gone or holds another value.
-- When it deletes, it first publishes "del 0 <value>" on the lock's watch
-- channel, as acquire.lua does.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. ARGV[1])
  return redis.call('DEL', KEYS[1])
end
return 0
