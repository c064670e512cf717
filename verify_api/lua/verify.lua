-- Check authentic codes of one segment against their batches; in verify mode record the scan.
-- One call may carry the checks of several requests (a worker's checks of one event-loop turn,
-- verify_api/check/turns.py), each code with the context of its own request.
-- KEYS[1] = segment ranges (is:{TENANT/sN}:ranges): batch id by first serial in the segment
-- KEYS[2] = segment batch facts (is:{TENANT/sN}:batches): id -> "state key_id wire first last sku"
-- KEYS[3] = claims outbox (is:{TENANT/sN}:claims): a stream the points side credits from
-- KEYS[4] = the day's check counters, the day in the tenant's time zone (is:{TENANT/sN}:stats:YYYYMMDD, verify_api/check/stats.py)
-- KEYS[4+j] = the j-th scan bucket the call reads (is:{TENANT/sN}:scan:B), each named once:
--             serial % 256 -> record (layout in verify_api/check/scanrecord.py)
-- ARGV[1] = mode: 'v' verify and record, 'l' look up only; ARGV[2] = now (unix seconds)
-- ARGV[3] = C, the number of contexts; then C contexts of 10 values each:
--   check cap (no claim once the count passes it), channel code (1-4), region or '',
--   phone fingerprint ('0': no phone), phone sketch bit, region sketch bit,
--   the member phone in E.164 ('' if none), channel name,
--   the SKUs the code may belong to, space-separated ('' = any: a GS1 link names a GTIN, and
--   a genuine serial under another product's GTIN is a copied label),
--   where the region came from (declared | member | phone | none; '' look-ups)
-- then one value, the codes: 15 bytes per code, big-endian unsigned (struct '>HI4I4BHBB'):
--   its context's number (1..C), serial, key id, profile wire id, j (its bucket is
--   KEYS[4+j]), bucket field (serial % 256), 1 if its key is revoked else 0.
--   One value, not seven per code: a 1,000-code carton's ~7,000 arguments took its worker
--   1.6 ms to build and pack (1.1 ms as one value), and this script 4.2 ms (3.9 ms).
-- Returns 4 values per code: status (counterfeit | not_activated | recalled | revoked |
-- active), sku, record after this check ('' if never scanned), and 0 or, if this check
-- claimed the code, 1 or (with a phone) the id of its claims outbox entry.
-- The day's counters are added up over the call and written once per field at the end.
local mode, now = ARGV[1], tonumber(ARGV[2])
local contexts = tonumber(ARGV[3])
local CONTEXT = 10
local codes_at = 4 + contexts * CONTEXT -- ARGV index of the packed codes
local known = {} -- batches met so far in this call: {first, last, facts}
local allowed = {} -- per context: set of SKUs, or false for any
local counts, fields = {}, {} -- the day's counters this call adds, and their order
local out = {}

-- The context of a code: ARGV values from `at` on (cap at at, channel at at+1, ...).
local function context_at(n) return 4 + (n - 1) * CONTEXT end

local function allowed_in(n, c)
  if allowed[n] == nil then
    allowed[n] = false
    if ARGV[c + 8] ~= '' then
      allowed[n] = {}
      for sku in string.gmatch(ARGV[c + 8], '%S+') do allowed[n][sku] = true end
    end
  end
  return allowed[n]
end

local function batch_of(serial)
  for _, b in ipairs(known) do
    if serial >= b[1] and serial <= b[2] then return b end
  end
  local hit = redis.call('ZREVRANGEBYSCORE', KEYS[1], string.format('%d', serial), '-inf',
    'LIMIT', 0, 1)
  if #hit == 0 then return nil end
  local facts = redis.call('HGET', KEYS[2], hit[1])
  if not facts then return nil end
  local state, key_id, wire, first, last, sku =
    string.match(facts, '^(%S+) (%d+) (%d+) (%d+) (%d+) (.*)$')
  local b = {tonumber(first), tonumber(last), state, tonumber(key_id), tonumber(wire), sku,
    hit[1], 'sku:' .. sku}
  known[#known + 1] = b
  return b
end

local function bump(field)
  if not counts[field] then
    counts[field] = 0
    fields[#fields + 1] = field
  end
  counts[field] = counts[field] + 1
end

-- The counter fields of a context, made once per call (not concatenated for every code).
local named = {}
local function fields_of(n, c)
  local f = named[n]
  if not f then
    local region = ARGV[c + 2] ~= '' and ARGV[c + 2] or '-'
    f = {'region:' .. region, 'ch:' .. ARGV[c + 7],
         ARGV[c + 9] ~= '' and 'rsrc:' .. ARGV[c + 9] or false, 'cf_region:' .. region}
    named[n] = f
  end
  return f
end
local result_field = {}

-- Count a consumer's check by result, product, region and channel (reports read these).
local function tally(n, c, result, sku_field)
  local f = fields_of(n, c)
  local rf = result_field[result]
  if not rf then
    rf = 'r:' .. result
    result_field[result] = rf
  end
  bump(rf)
  bump(sku_field)
  bump(f[1])
  bump(f[2])
  if f[3] then bump(f[3]) end
  if result == 'counterfeit' then bump(f[4]) end
end

local function record_check(c, bucket, field, rec)
  local flags, count, first, claimed, phones, regions, region
  if rec then
    local _
    flags, count, first, _, claimed, phones, regions = struct.unpack('>BHIIIHB', rec)
    region = string.sub(rec, 19)
  else
    flags, count, first, claimed, phones, regions, region =
      ARGV[c + 1] * 2, 0, now, 0, 0, 0, ARGV[c + 2]
  end
  if count < 65535 then count = count + 1 end
  phones = bit.bor(phones, tonumber(ARGV[c + 4]))
  regions = bit.bor(regions, tonumber(ARGV[c + 5]))
  local claimed_now = 0
  if claimed == 0 and ARGV[c + 3] ~= '0' and count <= tonumber(ARGV[c]) then
    claimed, claimed_now = tonumber(ARGV[c + 3]), 1
  end
  rec = struct.pack('>BHIIIHB', flags, count, first, now, claimed, phones, regions) .. region
  redis.call('HSET', bucket, field, rec)
  return rec, claimed_now
end

-- A claim and its outbox entry are written together: the points credit that
-- follows may crash, the reconciler replays the outbox (points_bridge/reconcile.py).
local function queue_claim(c, serial, b)
  return redis.call('XADD', KEYS[3], '*', 'serial', string.format('%d', serial), 'batch', b[7],
    'sku', b[6], 'phone', ARGV[c + 6], 'channel', ARGV[c + 7], 'region', ARGV[c + 2],
    'region_source', ARGV[c + 9], 'at', ARGV[2])
end

-- Serials are below 10^9 (codegen/codes.py): a Lua number holds one exactly, and '%d'
-- writes its digits where they are stored or compared as text; a bucket field (< 256)
-- goes to redis.call as a number, which writes an integer's digits.
local codes, pos = ARGV[codes_at], 1
while pos <= #codes do
  local n, serial, key_id, wire, j, field, revoked
  n, serial, key_id, wire, j, field, revoked, pos = struct.unpack('>HI4I4BHBB', codes, pos)
  local c = context_at(n)
  local b = batch_of(serial)
  local only = allowed_in(n, c)
  if not b or serial > b[2] or b[4] ~= key_id or b[5] ~= wire
      or (only and not only[b[6]]) then
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = 'counterfeit', '', '', 0
    if mode == 'v' then tally(n, c, 'counterfeit', 'sku:-') end
  else
    local bucket = KEYS[4 + j]
    local rec = redis.call('HGET', bucket, field)
    local status, claimed_now = b[3], 0
    if revoked == 1 or (rec and string.byte(rec, 1) % 2 == 1) then
      status = 'revoked'
    elseif status == 'minted' then
      status = 'not_activated'
    elseif status == 'active' and mode == 'v' then
      rec, claimed_now = record_check(c, bucket, field, rec)
      if claimed_now == 1 and ARGV[c + 6] ~= '' then
        claimed_now = queue_claim(c, serial, b)
      end
    end
    if mode == 'v' then
      local result = status
      if status == 'active' then
        result = struct.unpack('>H', rec, 2) == 1 and 'genuine' or 'already_verified'
      end
      tally(n, c, result, b[8])
    end
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = status, b[6], rec or '', claimed_now
  end
end
for _, field in ipairs(fields) do redis.call('HINCRBY', KEYS[4], field, counts[field]) end
return out
