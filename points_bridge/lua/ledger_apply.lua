-- Append one ledger entry and move the balance with it, once per idempotency key.
-- KEYS[1] = member hash    (is:{T/mK}:m:CARD): balance, earned, tier, status, v, d:YYYYMMDD
-- KEYS[2] = ledger stream  (is:{T/mK}:ledger:CARD)
-- KEYS[3] = idem hash      (is:{T/mK}:idem:CARD): key -> "<body sha> <entry id>"
-- KEYS[4] = lots list      (is:{T/mK}:lots:CARD): where a version before kept the expiry
--           lots, now the record's 'lots' field (below); moved there when found
-- KEYS[5] = events stream  (is:{T/mK}:events): the same entry, for the CRM bridge
-- KEYS[6] = pending hash   (is:{T/mK}:pending): "<card>/<serial>" -> a frozen member's claim
-- KEYS[7] = counts hash    (is:{T/mK}:counts): the shard's report counters (counters.py):
--           "m|<status>|<tier>" members, "p|issued|<sku>", "p|redeemed", "p|adjusted",
--           "p|expired" points, moved with every entry and tier change written here
-- ARGV[1] = JSON {card, at, kind, idem, sha, version?, delta, earned, day?, drop_days [],
--                 need_active?, lot_expires ("0": none), tier?, fields {}, member_set {},
--                 park?, pending_field?, stored?, spend?, need_points?, undo_day?}
--   stored: a stored-value movement (minor units, decimal string, |n| <= 10^10); the
--   stored balance never goes below 0 (why=insufficient_stored) nor past 10^15.
--   spend: a change of the member's lifetime spend (purchases +, refunds -).
--   need_points: points a purchase pays with; refused (insufficient) unless the balance
--   before the entry covers them (points earned by the same purchase do not pay for it).
--   earned may be negative only to take back what a purchase earned (a refund): then
--   undo_day names the day field it was counted in, decremented if still kept.
--   member_set: fields written on the member hash with the entry (a credit records
--   last_check_at, last_region and sku:<SKU> for the customer-care segments).
--   kind "" only expires due lots; version (when given) must equal the record's v, so a
--   figure the caller computed from a snapshot (award, tier, daily cap) is still right.
--   park: the claim to keep in KEYS[6] under pending_field instead of posting (the
--   member is frozen at that version); a posted entry removes pending_field.
-- Points (delta, earned, lot_expires) come as decimal strings and are written with
-- HINCRBY and as the same strings: Lua numbers are doubles, so a figure is turned into
-- one only to compare it, and only once it is known to be within the bounds below
-- (codegen/amounts.py), where doubles are exact. A number the script computes is
-- written with '%.0f' (exact for an integral double), never tostring ('%.14g').
-- Returns JSON {ok=true, entry, balance, earned, tier, tier_from?, expired}
--           or {ok=false, why=dup|conflict|missing|stale|inactive|insufficient|
--                          insufficient_stored|bounds|parked}
local MAX_BALANCE = 1000000000000000  -- 10^15
local MAX_ENTRY = 1000000000          -- 10^9
local MAX_AMOUNT = 10000000000        -- 10^10 minor units: one money movement
local spec = cjson.decode(ARGV[1])
-- A decimal integer string within [-MAX_AMOUNT, MAX_AMOUNT] as a number, else nil.
local function amount(s)
  if s == nil then return 0 end
  if type(s) ~= 'string' or not string.match(s, '^%-?%d+$') or #s > 12 then return nil end
  local n = tonumber(s)
  if n > MAX_AMOUNT or n < -MAX_AMOUNT then return nil end
  return n
end
local at = tonumber(spec.at)

local function str(n) return string.format('%.0f', n) end
-- A decimal integer string within [-MAX_ENTRY, MAX_ENTRY] as a number, else nil.
local function entry_points(s)
  if type(s) ~= 'string' or not string.match(s, '^%-?%d%d?%d?%d?%d?%d?%d?%d?%d?%d?$') then
    return nil
  end
  local n = tonumber(s)
  if n > MAX_ENTRY or n < -MAX_ENTRY then return nil end
  return n
end

if spec.idem ~= '' then
  local seen = redis.call('HGET', KEYS[3], spec.idem)
  if seen then
    local sha, id = string.match(seen, '^(%S+) (%S+)$')
    if sha ~= spec.sha then return cjson.encode({ok = false, why = 'conflict'}) end
    return cjson.encode({ok = false, why = 'dup', entry = id})
  end
end
-- One read of every field of the record the checks below need, and one write of the
-- fields set (HSET) at the end: each call is ~0.3-1 us of Redis time, on every posting,
-- and Redis is what a claim's credit waits for.
local record = redis.call('HMGET', KEYS[1], 'status', 'v', 'lots', 'balance', 'earned',
                          'stored', 'spend', 'tier')
local status = record[1]
if not status then return cjson.encode({ok = false, why = 'missing'}) end
if spec.version and record[2] ~= spec.version then
  return cjson.encode({ok = false, why = 'stale'})
end

-- The points report's counter of an entry (points_bridge/counters.py POINTS_BY_KIND).
local function negated(s)
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end
local function count(e)
  local field, by
  if e.kind == 'credit' or e.kind == 'reversal' then  -- a reversal takes a credit back
    field, by = 'p|issued|' .. ((e.sku and e.sku ~= '') and e.sku or '-'), e.delta
  elseif e.kind == 'redeem' then
    field, by = 'p|redeemed', negated(e.delta)
  elseif e.kind == 'adjust' then
    field, by = 'p|adjusted', e.delta
  elseif e.kind == 'expire' then
    field, by = 'p|expired', negated(e.delta)
  end
  if field and by ~= '-0' then redis.call('HINCRBY', KEYS[7], field, by) end
end

-- Returns the entry's id and the record's balance, earned and tier after it.
local function append(e)
  count(e)
  local m = spec.stored and redis.call('HMGET', KEYS[1], 'balance', 'earned', 'tier', 'stored')
            or redis.call('HMGET', KEYS[1], 'balance', 'earned', 'tier')
  e.balance, e.earned, e.tier, e.at = m[1], m[2], m[3], spec.at
  if spec.stored then e.stored = m[4] or '0' end
  -- every value is a string but a record's missing field (false) or a caller's number: the
  -- common case asks type() once and calls nothing (~15k of ~410k instructions a credit)
  local fields, n = {}, 0
  for k, v in pairs(e) do
    local t = type(v)
    if t ~= 'string' then v = t == 'number' and str(v) or tostring(v) end
    fields[n + 1], fields[n + 2] = k, v
    n = n + 2
  end
  local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('XADD', KEYS[5], '*', 'type', 'ledger', 'card', spec.card, 'entry', id,
             'data', cjson.encode(e))
  return id, m
end

-- The expiry lots, "<expires_at> <points left>" oldest first, are the record's 'lots' field
-- joined by ',' (a list of their own cost each member ~210 B; points_bridge/members.py
-- member_lots). A version before kept them in the list KEYS[4]: moved here when touched.
local lots, lots_changed = {}, false
for lot in string.gmatch(record[3] or '', '[^,]+') do
  lots[#lots + 1] = lot
end
local listed = redis.call('LRANGE', KEYS[4], 0, -1)  -- {} once moved: one call either way
if #listed > 0 then
  for i = #listed, 1, -1 do table.insert(lots, 1, listed[i]) end
  redis.call('DEL', KEYS[4])
  lots_changed = true
end
local function save_lots()
  if #lots == 0 then
    redis.call('HDEL', KEYS[1], 'lots')
  else
    redis.call('HSET', KEYS[1], 'lots', table.concat(lots, ','))
  end
end

-- Expired lots leave first, so nothing spends or counts points that are gone.
local expired = 0
while lots[1] do
  local expires, left = string.match(lots[1], '^(%d+) (%d+)$')
  if tonumber(expires) > at then break end
  expired = expired + tonumber(left)
  table.remove(lots, 1)
  lots_changed = true
end
if lots_changed then save_lots() end
local version = tonumber(record[2] or '0')
if expired > 0 then
  redis.call('HINCRBY', KEYS[1], 'balance', '-' .. str(expired))
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  version = version + 1
  append({kind = 'expire', delta = '-' .. str(expired)})
end
if spec.kind == '' then return cjson.encode({ok = true, expired = str(expired)}) end

if spec.park then
  redis.call('HSET', KEYS[6], spec.pending_field, spec.park)
  return cjson.encode({ok = false, why = 'parked', expired = str(expired)})
end
if spec.need_active and status ~= 'active' then
  return cjson.encode({ok = false, why = 'inactive', status = status, expired = str(expired)})
end
local delta = entry_points(spec.delta)
local earned = entry_points(spec.earned or '0')
local lot_expires = tonumber(spec.lot_expires or '0') or 0
local stored_delta, spend_delta = amount(spec.stored), amount(spec.spend)
local need_points = amount(spec.need_points)
if not delta or not earned or not stored_delta or not spend_delta or not need_points
    or (earned < 0 and not spec.undo_day) then
  return cjson.encode({ok = false, why = 'bounds', expired = str(expired)})
end
-- read again only after an expiry above, which moved the balance
local figures = {record[4], record[5], record[6], record[7]}
if expired > 0 then
  figures = redis.call('HMGET', KEYS[1], 'balance', 'earned', 'stored', 'spend')
end
local balance_text = figures[1] or '0'
local balance = tonumber(balance_text)
local earned_before = tonumber(figures[2] or '0')
if need_points > 0 and balance < need_points then
  return cjson.encode({ok = false, why = 'insufficient', balance = balance_text,
                       expired = str(expired)})
end
local stored_text = figures[3] or '0'
local stored = tonumber(stored_text)
if stored + stored_delta < 0 then
  return cjson.encode({ok = false, why = 'insufficient_stored', stored = stored_text,
                       expired = str(expired)})
end
local spend_before = tonumber(figures[4] or '0')
if stored + stored_delta > MAX_BALANCE or spend_before + spend_delta > MAX_BALANCE
    or spend_before + spend_delta < 0 or earned_before + earned < 0 then
  return cjson.encode({ok = false, why = 'bounds', expired = str(expired)})
end
if delta < 0 and balance < -delta then
  return cjson.encode({ok = false, why = 'insufficient', balance = balance_text,
                       expired = str(expired)})
end
if (delta > 0 and balance > MAX_BALANCE - delta)
    or (earned > 0 and earned_before > MAX_BALANCE - earned) then
  return cjson.encode({ok = false, why = 'bounds', balance = balance_text,
                       expired = str(expired)})
end

redis.call('HINCRBY', KEYS[1], 'balance', spec.delta)
if earned > 0 then
  redis.call('HINCRBY', KEYS[1], 'earned', spec.earned)
  redis.call('HINCRBY', KEYS[1], spec.day, spec.earned)
elseif earned < 0 then
  redis.call('HINCRBY', KEYS[1], 'earned', spec.earned)
  local kept = tonumber(redis.call('HGET', KEYS[1], spec.undo_day) or '0')
  if kept > 0 then
    redis.call('HINCRBY', KEYS[1], spec.undo_day, str(math.max(earned, -kept)))
  end
end
if stored_delta ~= 0 then redis.call('HINCRBY', KEYS[1], 'stored', spec.stored) end
if spend_delta ~= 0 then redis.call('HINCRBY', KEYS[1], 'spend', spec.spend) end
local gone = {}  -- fields of the record to delete, and to set (with the new version), below
for _, field in ipairs(spec.drop_days or {}) do gone[#gone + 1] = field end
local set = {}
for k, v in pairs(spec.member_set or {}) do set[#set + 1], set[#set + 2] = k, v end
if spec.pending_field then redis.call('HDEL', KEYS[6], spec.pending_field) end
-- A purchase paid with points takes them from the oldest lots and adds what it earned
-- as a new lot: lots move by (add, take), not by the net delta.
local add, take = delta + need_points, need_points
if add < 0 then add, take = 0, take - add end
if add > 0 and lot_expires > 0 then
  local expires, left = string.match(lots[#lots] or '', '^(%d+) (%d+)$')
  if expires and tonumber(expires) == lot_expires then
    lots[#lots] = expires .. ' ' .. str(tonumber(left) + add)
  else
    lots[#lots + 1] = spec.lot_expires .. ' ' .. str(add)
  end
end
if take > 0 then
  local owed = take
  while owed > 0 and lots[1] do
    local expires, left = string.match(lots[1], '^(%d+) (%d+)$')
    left = tonumber(left)
    if left <= owed then
      table.remove(lots, 1)
      owed = owed - left
    else
      lots[1] = expires .. ' ' .. str(left - owed)
      owed = 0
    end
  end
end
if (add > 0 and lot_expires > 0) or take > 0 then
  if #lots == 0 then
    gone[#gone + 1] = 'lots'
  else
    set[#set + 1], set[#set + 2] = 'lots', table.concat(lots, ',')
  end
end

-- The entry carries the tier after it; a change of tier follows as its own entry.
local tier_from = false
local tier = record[8] or ''  -- an expiry does not change it
if spec.tier and spec.tier ~= '' and spec.tier ~= tier then
  set[#set + 1], set[#set + 2] = 'tier', spec.tier
  redis.call('HINCRBY', KEYS[7], 'm|' .. status .. '|' .. tier, -1)
  redis.call('HINCRBY', KEYS[7], 'm|' .. status .. '|' .. spec.tier, 1)
  tier_from = tier
end
-- the version goes up with the entry: a snapshot read before it is stale (spec.version)
set[#set + 1], set[#set + 2] = 'v', str(version + 1)
redis.call('HSET', KEYS[1], unpack(set))
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
local e = {kind = spec.kind, delta = spec.delta, idem = spec.idem}
if spec.stored then e.stored_delta = spec.stored end
for k, v in pairs(spec.fields or {}) do e[k] = v end
local id, m = append(e)
redis.call('HSET', KEYS[3], spec.idem, spec.sha .. ' ' .. id)
-- a tier entry moves no figure: m stays the record's after both
if tier_from then append({kind = 'tier', delta = '0', from = tier_from, to = spec.tier}) end
return cjson.encode({ok = true, entry = id, balance = m[1], earned = m[2], tier = m[3],
                     tier_from = tier_from, expired = str(expired)})
