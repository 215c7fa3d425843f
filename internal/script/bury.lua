-- bury.lua: clean up after an attempt whose answer from this master never
-- came: delete its key if the acquire ran, and leave a tombstone so that
-- the acquire, if it is still on its way (in the send queue of a
-- connection the client has since replaced, say), is refused when it
-- arrives.
--
-- KEYS[1]  lock key
-- KEYS[2]  the attempt's tombstone (acquire.lua's KEYS[5])
-- ARGV[1]  the attempt's value
-- ARGV[2]  how long the tombstone lasts, in milliseconds
--
-- Returns 1 when it deleted the key, 0 when the key did not hold the
-- value. It publishes "del 0 <value>" when it deletes, as release.lua does.
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. ARGV[1])
  return redis.call('DEL', KEYS[1])
end
return 0
