-- Queue one outbound SMS, once per message id (and once per dedup key, if given).
-- KEYS[1] = message hash   (is:{T}:out:m:ID)
-- KEYS[2] = queue list     (is:{T}:out:q:tx or is:{T}:out:q:bulk)
-- KEYS[3] = opt-out hash   (is:{T}:optout): phone -> when
-- KEYS[4] = scope counters (is:{T}:out:n:SCOPE)
-- KEYS[5] = all counters   (is:{T}:out:n:all)
-- KEYS[6] = dedup key      (is:{T}:out:once:...; KEYS[1] again when there is none)
-- ARGV[1] = JSON {id, phone, text, kind, scope, at, ttl, dedup_ttl, ignore_optout}
-- Returns 'queued', 'dup' (the id or dedup key exists) or 'optout' (nothing queued).
local m = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup' end
if KEYS[6] ~= KEYS[1] then
  if not redis.call('SET', KEYS[6], m.id, 'NX', 'EX', m.dedup_ttl) then return 'dup' end
end
if not m.ignore_optout and redis.call('HEXISTS', KEYS[3], m.phone) == 1 then
  redis.call('HINCRBY', KEYS[4], 'skipped', 1)
  redis.call('HINCRBY', KEYS[5], 'skipped', 1)
  return 'optout'
end
redis.call('HSET', KEYS[1], 'id', m.id, 'phone', m.phone, 'text', m.text, 'kind', m.kind,
           'scope', m.scope, 'status', 'queued', 'queued_at', m.at)
redis.call('EXPIRE', KEYS[1], m.ttl)
redis.call('RPUSH', KEYS[2], m.id)
redis.call('HINCRBY', KEYS[4], 'queued', 1)
redis.call('HINCRBY', KEYS[5], 'queued', 1)
return 'queued'
