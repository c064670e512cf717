-- Apply a delivery receipt to a sent message, once.
-- KEYS[1] = message hash   (is:{T}:out:m:ID)
-- KEYS[2] = scope counters (is:{T}:out:n:SCOPE)
-- KEYS[3] = all counters   (is:{T}:out:n:all)
-- ARGV[1] = 'delivered' or 'undelivered', ARGV[2] = error text, ARGV[3] = now
-- Returns the message's status after the receipt ('unknown' if there is no message).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'unknown' end
if status ~= 'sent' then return status end
local new = ARGV[1] == 'delivered' and 'delivered' or 'undelivered'
redis.call('HSET', KEYS[1], 'status', new, 'error', ARGV[2], 'done_at', ARGV[3])
redis.call('HINCRBY', KEYS[2], new, 1)
redis.call('HINCRBY', KEYS[3], new, 1)
return new
