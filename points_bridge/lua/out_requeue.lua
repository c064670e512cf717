-- Put back in its queue a message that failed for lack of SMS credit (after a top-up).
-- KEYS[1] = message hash      (is:{T}:out:m:ID)
-- KEYS[2] = no-credit set     (is:{T}:out:no-credit): id by when it failed
-- KEYS[3] = its queue         (is:{T}:out:q:tx or q:bulk)
-- KEYS[4] = scope counters    (is:{T}:out:n:SCOPE)
-- KEYS[5] = all counters      (is:{T}:out:n:all)
-- ARGV[1] = message id
-- Returns 1 when requeued; 0 when the message is gone or no longer failed for credit
-- (it leaves the set either way).
redis.call('ZREM', KEYS[2], ARGV[1])
local status, why = unpack(redis.call('HMGET', KEYS[1], 'status', 'error'))
if status ~= 'failed' or why ~= 'no_credit' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'error', '')
redis.call('HDEL', KEYS[1], 'done_at')
for _, key in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('HINCRBY', key, 'failed', -1)
  redis.call('HINCRBY', key, 'queued', 1)
end
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1
