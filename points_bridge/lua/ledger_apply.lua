-- Append one ledger entry and move the balance with it, once per idempotency key.
-- KEYS[1] = member hash    (is:{T/mK}:m:CARD): balance, earned, tier, status, v, d:YYYYMMDD
-- KEYS[2] = ledger stream  (is:{T/mK}:ledger:CARD)
-- KEYS[3] = idem hash      (is:{T/mK}:idem:CARD): key -> "<body sha> <entry id>"
-- KEYS[4] = lots list      (is:{T/mK}:lots:CARD): "<expires_at> <points left>", oldest first
-- KEYS[5] = events stream  (is:{T/mK}:events): the same entry, for the CRM bridge
-- ARGV[1] = JSON {card, at, kind, idem, sha, version?, delta, earned, day?, drop_days [],
--                 need_active?, lot_expires (0: none), tier?, fields {}, member_set {}}
--   member_set: fields written on the member hash with the entry (a credit records
--   last_check_at, last_region and sku:<SKU> for the customer-care segments).
--   kind "" only expires due lots; version (when given) must equal the record's v, so a
--   figure the caller computed from a snapshot (award, tier, daily cap) is still right.
-- Returns JSON {ok=true, entry, balance, earned, tier, tier_from?, expired}
--           or {ok=false, why=dup|conflict|missing|stale|inactive|insufficient, ...}
local spec = cjson.decode(ARGV[1])
local at = tonumber(spec.at)

if spec.idem ~= '' then
  local seen = redis.call('HGET', KEYS[3], spec.idem)
  if seen then
    local sha, id = string.match(seen, '^(%S+) (%S+)$')
    if sha ~= spec.sha then return cjson.encode({ok = false, why = 'conflict'}) end
    return cjson.encode({ok = false, why = 'dup', entry = id})
  end
end
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return cjson.encode({ok = false, why = 'missing'}) end
if spec.version and redis.call('HGET', KEYS[1], 'v') ~= spec.version then
  return cjson.encode({ok = false, why = 'stale'})
end

local function append(e)
  local m = redis.call('HMGET', KEYS[1], 'balance', 'earned', 'tier')
  e.balance, e.earned, e.tier, e.at = m[1], m[2], m[3], spec.at
  local fields = {}
  for k, v in pairs(e) do
    fields[#fields + 1] = k
    fields[#fields + 1] = tostring(v)
  end
  local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('XADD', KEYS[5], '*', 'type', 'ledger', 'card', spec.card, 'entry', id,
             'data', cjson.encode(e))
  return id
end

-- Expired lots leave first, so nothing spends or counts points that are gone.
local expired = 0
while true do
  local lot = redis.call('LINDEX', KEYS[4], 0)
  if not lot then break end
  local expires, left = string.match(lot, '^(%d+) (%d+)$')
  if tonumber(expires) > at then break end
  expired = expired + tonumber(left)
  redis.call('LPOP', KEYS[4])
end
if expired > 0 then
  redis.call('HINCRBY', KEYS[1], 'balance', -expired)
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  append({kind = 'expire', delta = -expired})
end
if spec.kind == '' then return cjson.encode({ok = true, expired = expired}) end

if spec.need_active and status ~= 'active' then
  return cjson.encode({ok = false, why = 'inactive', status = status, expired = expired})
end
local delta = tonumber(spec.delta)
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
if delta < 0 and balance + delta < 0 then
  return cjson.encode({ok = false, why = 'insufficient', balance = balance, expired = expired})
end

redis.call('HINCRBY', KEYS[1], 'balance', delta)
if tonumber(spec.earned) > 0 then
  redis.call('HINCRBY', KEYS[1], 'earned', spec.earned)
  redis.call('HINCRBY', KEYS[1], spec.day, spec.earned)
end
for _, field in ipairs(spec.drop_days or {}) do redis.call('HDEL', KEYS[1], field) end
for k, v in pairs(spec.member_set or {}) do redis.call('HSET', KEYS[1], k, v) end
if delta > 0 and tonumber(spec.lot_expires) > 0 then
  local last = redis.call('LINDEX', KEYS[4], -1)
  local expires, left = string.match(last or '', '^(%d+) (%d+)$')
  if expires and tonumber(expires) == tonumber(spec.lot_expires) then
    redis.call('LSET', KEYS[4], -1, expires .. ' ' .. (tonumber(left) + delta))
  else
    redis.call('RPUSH', KEYS[4], spec.lot_expires .. ' ' .. delta)
  end
elseif delta < 0 then
  local owed = -delta
  while owed > 0 do
    local lot = redis.call('LINDEX', KEYS[4], 0)
    if not lot then break end
    local expires, left = string.match(lot, '^(%d+) (%d+)$')
    left = tonumber(left)
    if left <= owed then
      redis.call('LPOP', KEYS[4])
      owed = owed - left
    else
      redis.call('LSET', KEYS[4], 0, expires .. ' ' .. (left - owed))
      owed = 0
    end
  end
end

-- The entry carries the tier after it; a change of tier follows as its own entry.
local tier_from = false
local tier = redis.call('HGET', KEYS[1], 'tier') or ''
if spec.tier and spec.tier ~= '' and spec.tier ~= tier then
  redis.call('HSET', KEYS[1], 'tier', spec.tier)
  tier_from = tier
end
local e = {kind = spec.kind, delta = delta, idem = spec.idem}
for k, v in pairs(spec.fields or {}) do e[k] = v end
local id = append(e)
redis.call('HSET', KEYS[3], spec.idem, spec.sha .. ' ' .. id)
if tier_from then append({kind = 'tier', delta = 0, from = tier_from, to = spec.tier}) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
local m = redis.call('HMGET', KEYS[1], 'balance', 'earned', 'tier')
return cjson.encode({ok = true, entry = id, balance = m[1], earned = m[2], tier = m[3],
                     tier_from = tier_from, expired = expired})
