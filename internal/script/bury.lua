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
-- ARGV[3]  optional: another value of the same lease's, also deleted (not
--          buried): a failed local handoff's next value, as release.lua's
--          ARGV[2]
--
-- Returns 1 when it deleted the key, 0 when the key is gone, -1 when
-- another value holds it (as release.lua). It publishes "del 0 <value>"
-- when it deletes, as release.lua does.
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
local v = redis.call('GET', KEYS[1])
if v ~= false and (v == ARGV[1] or (ARGV[3] ~= nil and ARGV[3] ~= '' and v == ARGV[3])) then
  redis.pcall('PUBLISH', '__distlock__:' .. KEYS[1], 'del 0 ' .. v)
  return redis.call('DEL', KEYS[1])
end
if v == false then
  return 0
end
return -1
