-- leave.lua: take a waiting acquire off the waiting list (it gave up).
--
-- KEYS[1]  waiting list by arrival; KEYS[2]  by lapse time
-- ARGV[1]  the waiter's value
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
