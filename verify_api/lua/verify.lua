-- Check authentic codes of one segment against their batches; in verify mode record the scan.
-- KEYS[1] = segment ranges (is:{TENANT/sN}:ranges): batch id by first serial in the segment
-- KEYS[2] = segment batch facts (is:{TENANT/sN}:batches): id -> "state key_id wire first last sku"
-- KEYS[3] = claims outbox (is:{TENANT/sN}:claims): a stream the points side credits from
-- KEYS[4] = the day's check counters, the day in the tenant's time zone (is:{TENANT/sN}:stats:YYYYMMDD, verify_api/check/stats.py)
-- KEYS[4+i] = scan bucket of code i (is:{TENANT/sN}:scan:B): serial % 256 -> record
--             (layout in verify_api/check/scanrecord.py)
-- ARGV[1] = mode: 'v' verify and record, 'l' look up only; ARGV[2] = now (unix seconds)
-- ARGV[3] = check cap (no claim once the count passes it), ARGV[4] = channel code (1-4)
-- ARGV[5] = region or '', ARGV[6] = phone fingerprint ('0': no phone)
-- ARGV[7] = phone sketch bit, ARGV[8] = region sketch bit
-- ARGV[9] = the member phone in E.164 ('' if none), ARGV[10] = channel name
-- ARGV[11] = the SKUs the code may belong to, space-separated ('' = any): a GS1 link names a
--            GTIN, and a genuine serial under another product's GTIN is a copied label
-- ARGV[12] = where the region came from (declared | member | phone | none; '' look-ups)
-- ARGV[8+5i .. 12+5i] = code i: serial, key id, profile wire id, bucket field, '1' if its key
--                      is revoked else '0'
-- Returns 4 values per code: status (counterfeit | not_activated | recalled | revoked |
-- active), sku, record after this check ('' if never scanned), and 0 or, if this check
-- claimed the code, 1 or (with a phone) the id of its claims outbox entry.
local mode, now, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local known = {} -- batches met so far in this call: {first, last, facts}
local allowed = nil -- set of SKUs, or nil for any
if ARGV[11] ~= '' then
  allowed = {}
  for sku in string.gmatch(ARGV[11], '%S+') do allowed[sku] = true end
end
local out = {}

local function batch_of(serial, serial_arg)
  for _, b in ipairs(known) do
    if serial >= b[1] and serial <= b[2] then return b end
  end
  local hit = redis.call('ZREVRANGEBYSCORE', KEYS[1], serial_arg, '-inf', 'LIMIT', 0, 1)
  if #hit == 0 then return nil end
  local facts = redis.call('HGET', KEYS[2], hit[1])
  if not facts then return nil end
  local state, key_id, wire, first, last, sku =
    string.match(facts, '^(%S+) (%d+) (%d+) (%d+) (%d+) (.*)$')
  local b = {tonumber(first), tonumber(last), state, key_id, wire, sku, hit[1]}
  known[#known + 1] = b
  return b
end

-- Count a consumer's check by result, product, region and channel (reports read these).
local function tally(result, sku)
  local region = ARGV[5] ~= '' and ARGV[5] or '-'
  redis.call('HINCRBY', KEYS[4], 'r:' .. result, 1)
  redis.call('HINCRBY', KEYS[4], 'sku:' .. sku, 1)
  redis.call('HINCRBY', KEYS[4], 'region:' .. region, 1)
  redis.call('HINCRBY', KEYS[4], 'ch:' .. ARGV[10], 1)
  if ARGV[12] ~= '' then redis.call('HINCRBY', KEYS[4], 'rsrc:' .. ARGV[12], 1) end
  if result == 'counterfeit' then redis.call('HINCRBY', KEYS[4], 'cf_region:' .. region, 1) end
end

local function record_check(bucket, field, rec)
  local flags, count, first, claimed, phones, regions, region
  if rec then
    local _
    flags, count, first, _, claimed, phones, regions = struct.unpack('>BHIIIHB', rec)
    region = string.sub(rec, 19)
  else
    flags, count, first, claimed, phones, regions, region = ARGV[4] * 2, 0, now, 0, 0, 0, ARGV[5]
  end
  if count < 65535 then count = count + 1 end
  phones = bit.bor(phones, tonumber(ARGV[7]))
  regions = bit.bor(regions, tonumber(ARGV[8]))
  local claimed_now = 0
  if claimed == 0 and ARGV[6] ~= '0' and count <= cap then
    claimed, claimed_now = tonumber(ARGV[6]), 1
  end
  rec = struct.pack('>BHIIIHB', flags, count, first, now, claimed, phones, regions) .. region
  redis.call('HSET', bucket, field, rec)
  return rec, claimed_now
end

-- A claim and its outbox entry are written together: the points credit that
-- follows may crash, the reconciler replays the outbox (points_bridge/reconcile.py).
local function queue_claim(serial_arg, b)
  return redis.call('XADD', KEYS[3], '*', 'serial', serial_arg, 'batch', b[7], 'sku', b[6],
    'phone', ARGV[9], 'channel', ARGV[10], 'region', ARGV[5], 'region_source', ARGV[12], 'at', ARGV[2])
end

for i = 1, #KEYS - 4 do
  local at = 8 + 5 * i
  local serial = tonumber(ARGV[at])
  local b = batch_of(serial, ARGV[at])
  if not b or serial > b[2] or b[4] ~= ARGV[at + 1] or b[5] ~= ARGV[at + 2]
      or (allowed and not allowed[b[6]]) then
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = 'counterfeit', '', '', 0
    if mode == 'v' then tally('counterfeit', '-') end
  else
    local bucket, field = KEYS[4 + i], ARGV[at + 3]
    local rec = redis.call('HGET', bucket, field)
    local status, claimed_now = b[3], 0
    if ARGV[at + 4] == '1' or (rec and string.byte(rec, 1) % 2 == 1) then
      status = 'revoked'
    elseif status == 'minted' then
      status = 'not_activated'
    elseif status == 'active' and mode == 'v' then
      rec, claimed_now = record_check(bucket, field, rec)
      if claimed_now == 1 and ARGV[9] ~= '' then claimed_now = queue_claim(ARGV[at], b) end
    end
    if mode == 'v' then
      local result = status
      if status == 'active' then
        result = struct.unpack('>H', rec, 2) == 1 and 'genuine' or 'already_verified'
      end
      tally(result, b[6])
    end
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = status, b[6], rec or '', claimed_now
  end
end
return out
