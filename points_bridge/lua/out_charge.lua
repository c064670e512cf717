-- Take a popped message for sending: honour an opt-out made since it was queued, and
-- charge its cost against the tenant's credit, in one step.
-- KEYS[1] = message hash   (is:{T}:out:m:ID)
-- KEYS[2] = opt-out hash   (is:{T}:optout)
-- KEYS[3] = credit string  (is:{T}:out:credit): units left
-- KEYS[4] = scope counters (is:{T}:out:n:SCOPE)
-- KEYS[5] = all counters   (is:{T}:out:n:all)
-- KEYS[6] = no-credit set  (is:{T}:out:no-credit): a message refused for lack of credit
--           waits there for a top-up (out_requeue.lua)
-- ARGV[1] = cost of one message (units), ARGV[2] = now
-- Returns 'ok' (status now 'sending'), 'gone', 'optout' or 'no_credit'.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' then return 'gone' end
local kind, phone = unpack(redis.call('HMGET', KEYS[1], 'kind', 'phone'))
local function finish(new, why, counter)
  redis.call('HSET', KEYS[1], 'status', new, 'error', why, 'done_at', ARGV[2])
  for _, key in ipairs({KEYS[4], KEYS[5]}) do
    redis.call('HINCRBY', key, 'queued', -1)
    redis.call('HINCRBY', key, counter, 1)
  end
end
if kind ~= 'optout_ack' and kind ~= 'otp' and redis.call('HEXISTS', KEYS[2], phone) == 1 then
  finish('skipped', 'opted_out', 'skipped')
  return 'optout'
end
local cost = tonumber(ARGV[1])
if cost > 0 then
  local left = tonumber(redis.call('GET', KEYS[3]) or '0')
  if left < cost then
    finish('failed', 'no_credit', 'failed')
    if KEYS[6] then redis.call('ZADD', KEYS[6], ARGV[2], redis.call('HGET', KEYS[1], 'id')) end
    return 'no_credit'
  end
  redis.call('DECRBY', KEYS[3], cost)
end
redis.call('HSET', KEYS[1], 'status', 'sending', 'cost', cost)
return 'ok'
