-- Create or change one member record; what changed goes to its ledger and the CRM stream.
-- KEYS[1] = member hash    (is:{T/mK}:m:CARD)
-- KEYS[2] = ledger stream  (is:{T/mK}:ledger:CARD)
-- KEYS[3] = idem hash      (is:{T/mK}:idem:CARD), unused here: same KEYS as ledger_apply
-- KEYS[4] = lots list      (is:{T/mK}:lots:CARD): a version before's expiry lots (now the
--           record's 'lots' field), dropped with them on a forfeit
-- KEYS[5] = events stream  (is:{T/mK}:events)
-- KEYS[6] = pending hash   (is:{T/mK}:pending), unused here
-- KEYS[7] = counts hash    (is:{T/mK}:counts): members per "m|<status>|<tier>" (counters.py)
-- ARGV[1] = JSON {card, at, create?, expect {field: [allowed values]}, set {}, del [],
--                 forfeit? (zero the balance), entry {kind, ...}?, event?}
-- Returns JSON {ok=true, member, entry?, forfeited} or {ok=false, why=exists|missing|state, member}
local spec = cjson.decode(ARGV[1])

local function record()
  local flat = redis.call('HGETALL', KEYS[1])
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- Figures stay the strings Redis holds (never tostring of a double: '%.14g' rounds).
local function flatten(t)
  local out = {}
  for k, v in pairs(t) do
    out[#out + 1] = k
    out[#out + 1] = type(v) == 'number' and string.format('%.0f', v) or tostring(v)
  end
  return out
end

local m = record()
-- The member's place in the tier report before and after: moved in KEYS[7] if it changed.
local function place(r)
  if not r.status then return nil end
  return 'm|' .. r.status .. '|' .. (r.tier or '')
end
local before = place(m)
if spec.create and m.status then
  return cjson.encode({ok = false, why = 'exists', member = m})
elseif not spec.create and not m.status then
  return cjson.encode({ok = false, why = 'missing'})
end
for field, allowed in pairs(spec.expect or {}) do
  local found = false
  for _, value in ipairs(allowed) do
    if (m[field] or '') == value then found = true end
  end
  if not found then return cjson.encode({ok = false, why = 'state', field = field, member = m}) end
end

local forfeited = '0'
if spec.forfeit then
  forfeited = m.balance or '0'
  redis.call('HSET', KEYS[1], 'balance', '0')
  redis.call('HDEL', KEYS[1], 'lots')
  redis.call('DEL', KEYS[4])  -- where a version before kept them
end
local set = flatten(spec.set or {})
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
for _, field in ipairs(spec.del or {}) do redis.call('HDEL', KEYS[1], field) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
m = record()
local after = place(m)
if before ~= after then
  if before then redis.call('HINCRBY', KEYS[7], before, -1) end
  redis.call('HINCRBY', KEYS[7], after, 1)
end

local entry_id = false
if spec.entry then
  local delta = forfeited == '0' and '0' or '-' .. forfeited
  local e = {kind = spec.entry.kind, delta = delta, balance = m.balance, earned = m.earned,
             tier = m.tier, at = spec.at}
  for k, v in pairs(spec.entry) do e[k] = v end
  local fields = flatten(e)
  entry_id = redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('XADD', KEYS[5], '*', 'type', 'ledger', 'card', spec.card, 'entry', entry_id,
             'data', cjson.encode(e))
end
if spec.event then
  local public = {}
  for k, v in pairs(m) do
    if k ~= 'v' and string.sub(k, 1, 2) ~= 'd:' then public[k] = v end
  end
  redis.call('XADD', KEYS[5], '*', 'type', spec.event, 'card', spec.card, 'data',
             cjson.encode(public))
end
return cjson.encode({ok = true, member = m, entry = entry_id, forfeited = forfeited})
