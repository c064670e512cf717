-- Create the new members of one shard from an import, each with its opening balance, at once.
-- A member is created and posted exactly as member_update.lua (create) followed by
-- ledger_apply.lua (an adjustment keyed ARGV's idem) would for a card with no record: the
-- same record, entry, idem field, lot and CRM events, so a later post of the same key is a
-- duplicate. A card that already has a record is left alone and answered 'exists'.
-- KEYS[1] = events stream (is:{T/mK}:events)
-- KEYS[2] = counts hash   (is:{T/mK}:counts): "m|active|<tier>" and "p|adjusted" move
-- KEYS[3 + 4(i-1) .. 6 + 4(i-1)] = row i's member hash, ledger stream, idem hash, lots list
--                                  (is:{T/mK}:m|ledger|idem|lots:CARD), one shard for all;
--                                  the list is unused (the lot is the record's 'lots' field)
-- ARGV[1] = JSON [{card, delta? (the opening balance: a decimal string, 1..10^9),
--                  sha? (its body hash)}]
-- ARGV[2] = at, ARGV[3] = the opening balance's idem key, ARGV[4] = its reason,
-- ARGV[5] = its lot's expiry ("0": none): the same for every row, sent once
-- ARGV[6 + 2(i-1)] = row i's new record as a JSON object (balance and earned "0", no v),
--                    also the data of its member.created event
-- ARGV[7 + 2(i-1)] = the data of its opening entry's ledger event (the entry as JSON; "")
-- The events' JSON comes made: encoding it here was a tenth of the script's time
-- (benchmarks/bench_members.py). The counts move once a call, not once a row: with the
-- flattening below, ~1.2 us a row less of the script's ~20 (commandstats, 2,000-row batches).
-- Returns [ "created" | "exists" | "bounds", ... ] in the order of the rows.
local rows = cjson.decode(ARGV[1])
local at, idem_key, reason, lot_expires = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local out = {}
local joined = {}  -- "m|<status>|<tier>" -> members created: one HINCRBY each at the end
local adjusted = 0  -- the opening balances posted: one HINCRBY of "p|adjusted" at the end

local function flatten(t)  -- and the number of its items
  local flat, n = {}, 0
  for k, v in pairs(t) do
    flat[n + 1] = k
    flat[n + 2] = type(v) == 'string' and v or tostring(v)
    n = n + 2
  end
  return flat, n
end

for i, row in ipairs(rows) do
  local base = 2 + 4 * (i - 1)
  local member, ledger, idem = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local delta = row.delta
  local created, entry = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  -- Figures stay strings: the delta is checked as text and moved with HINCRBY.
  if delta and not string.match(delta, '^[1-9]%d?%d?%d?%d?%d?%d?%d?%d?$')
      and delta ~= '1000000000' then
    out[i] = 'bounds'
  elseif redis.call('HEXISTS', member, 'status') == 1 then
    out[i] = 'exists'
  else
    -- What member_update.lua's create and ledger_apply.lua's post would leave, in one HSET:
    -- the record at v 1 (its member.created event), then the balance and v 2 of the post.
    local record = cjson.decode(created)
    local fields, n = flatten(record)
    fields[n + 1] = 'v'
    fields[n + 2] = delta and '2' or '1'
    if delta then
      fields[n + 3] = 'balance'
      fields[n + 4] = delta
    end
    redis.call('HSET', member, unpack(fields))
    redis.call('XADD', KEYS[1], '*', 'type', 'member.created', 'card', row.card, 'data',
               created)
    local counted = 'm|' .. record.status .. '|' .. record.tier
    joined[counted] = (joined[counted] or 0) + 1
    if delta then
      if lot_expires ~= '0' then  -- its expiry lot, as ledger_apply.lua keeps it
        redis.call('HSET', member, 'lots', lot_expires .. ' ' .. delta)
      end
      local id = redis.call('XADD', ledger, '*', 'kind', 'adjust', 'delta', delta,
                            'idem', idem_key, 'reason', reason, 'balance', delta,
                            'earned', record.earned, 'tier', record.tier, 'at', at)
      redis.call('XADD', KEYS[1], '*', 'type', 'ledger', 'card', row.card, 'entry', id,
                 'data', entry)
      redis.call('HSET', idem, idem_key, row.sha .. ' ' .. id)
      adjusted = adjusted + tonumber(delta)
    end
    out[i] = 'created'
  end
end
for field, count in pairs(joined) do  -- counts of rows: small whole numbers, not points
  redis.call('HINCRBY', KEYS[2], field, count)
end
if adjusted > 0 then  -- at most 10^9 a row: exact in a Lua number up to ~9 million rows
  redis.call('HINCRBY', KEYS[2], 'p|adjusted', string.format('%d', adjusted))
end
return out
