-- release.lua: delete the lock key only if it still holds this lease's
-- value; where the answer to the lease's acquire never came, also leave a
-- tombstone ("bury" the value), so that the acquire, if it is still on its
-- way (in the send queue of a connection the client has since replaced),
-- is refused when it arrives (acquire.lua checks it). A lease's release
-- also raises the lock's fence counter to the lease's own counter, so
-- that no master the key leaves has a counter below it.
--
-- KEYS[1]  lock key
-- KEYS[2]  optional: the lock key's fence counter (with ARGV[3])
-- KEYS[3]  optional: the value's tombstone (acquire.lua's KEYS[5])
-- ARGV[1]  lease value
-- ARGV[2]  optional ("" for none): another value of the same lease's, also
--          deleted (a local handoff that failed may have given the key a
--          next value on some masters before it was abandoned: handoff.go)
-- ARGV[3]  with KEYS[2]: the counter in the lease's token ("0" for a
--          value that never was a lease's: a failed attempt's)
-- ARGV[4]  with KEYS[3]: how long the tombstone lasts, in milliseconds
--
-- The raise (fencing.go, "A released key leaves its counter behind"): a
-- master that granted the lease at a lower counter gets the token's
-- counter from the write-back, sent in a goroutine of its own; the delete
-- can overtake it (that goroutine not scheduled yet, or the write-back
-- in the send queue of a replaced connection), and an acquire after the
-- delete would then INCR from below the token. The counter is raised
-- whatever the key holds: never lowered, so a late or repeated release
-- is harmless. A counter that is not a number (another program's value)
-- or not a string is left alone: acquire.lua fails there anyway.
--
-- Returns 1 when deleted, 0 when the key is gone (expired or deleted), -1
-- when another value holds it: Release tells a lease whose keys a majority
-- no longer held (lost before it was released) from one it released.
-- When it deletes, it first publishes "del 0 <value>" on the lock's watch
-- channel, as acquire.lua does.
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
end
if KEYS[2] then
  local t = tonumber(ARGV[3])
  if t and t > 0 then
    local c = redis.pcall('GET', KEYS[2])
    if c == false or (type(c) == 'string' and tonumber(c) and tonumber(c) < t) then
      redis.call('SET', KEYS[2], ARGV[3])
    end
  end
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
