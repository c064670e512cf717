-- Record what the gateway said about a message taken by out_charge.lua.
-- KEYS[1] = message hash   (is:{T}:out:m:ID)
-- KEYS[2] = credit string  (is:{T}:out:credit): a refused send is refunded
-- KEYS[3] = scope counters (is:{T}:out:n:SCOPE)
-- KEYS[4] = all counters   (is:{T}:out:n:all)
-- KEYS[5] = gateway ids    (is:{T}:out:gw): gateway id -> message id (receipts)
-- ARGV[1] = JSON {ok, gateway_id, error, at}
-- Returns the new status.
local r = cjson.decode(ARGV[1])
if redis.call('HGET', KEYS[1], 'status') ~= 'sending' then return 'gone' end
local cost = tonumber(redis.call('HGET', KEYS[1], 'cost') or '0')
local new = 'failed'
if r.ok then
  new = 'sent'
  redis.call('HSET', KEYS[1], 'status', 'sent', 'sent_at', r.at, 'gateway_id', r.gateway_id)
  if r.gateway_id ~= '' then
    redis.call('HSET', KEYS[5], r.gateway_id, redis.call('HGET', KEYS[1], 'id'))
  end
else
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', r.error, 'done_at', r.at, 'cost', 0)
  if cost > 0 then redis.call('INCRBY', KEYS[2], cost) end
end
for _, key in ipairs({KEYS[3], KEYS[4]}) do
  redis.call('HINCRBY', key, 'queued', -1)
  redis.call('HINCRBY', key, new, 1)
  if r.ok then redis.call('HINCRBY', key, 'spent', cost) end
end
return new
