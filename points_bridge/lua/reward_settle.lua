-- Move a redemption from one state to the next; give its item back or issue its coupon.
-- KEYS[1] = stock hash (is:{T}:reward-stock), KEYS[2] = states hash (is:{T}:redemption-states)
-- KEYS[3] = coupon facts (is:{T}:coupons), KEYS[4] = coupon states (is:{T}:coupon-states)
-- KEYS[5] = member's coupons (is:{T}:coupons:CARD)
-- ARGV[1] = redemption id, ARGV[2] = item, ARGV[3] = the state it must be in (held | done)
-- ARGV[4] = the state to move to (done | released | cancelled)
-- ARGV[5] = '1' to give the item back to the stock, else '0'
-- ARGV[6] = ledger entry id or '-' (kept when '-'), ARGV[7] = now
-- ARGV[8] = coupon code to issue or '' ; ARGV[9] = its facts JSON; ARGV[10] = its expiry
-- Moving to "cancelled" voids the redemption's coupon, and is refused while it is used.
-- Returns {'ok', state} after the move; {'same', state} when already in ARGV[4];
--         {'state', state} when in neither; {'coupon_used', state}; {'missing', ''}.
local now = ARGV[7]
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return {'missing', ''} end
local state, entry, coupon = string.match(raw, '^(%S+) (%S+) (%S+)$')
if state == ARGV[4] then return {'same', raw} end
if state ~= ARGV[3] then return {'state', raw} end
if ARGV[4] == 'cancelled' and coupon ~= '-' then
  local cs = redis.call('HGET', KEYS[4], coupon) or ''
  if string.sub(cs, 1, 5) == 'used ' then return {'coupon_used', raw} end
  redis.call('HSET', KEYS[4], coupon, 'void ' .. now)
end
if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[1], ARGV[2], 1) end
if ARGV[6] ~= '-' then entry = ARGV[6] end
if ARGV[8] ~= '' then
  coupon = ARGV[8]
  redis.call('HSET', KEYS[3], coupon, ARGV[9])
  redis.call('HSET', KEYS[4], coupon, 'issued ' .. ARGV[10])
  redis.call('ZADD', KEYS[5], now, coupon)
end
local after = ARGV[4] .. ' ' .. entry .. ' ' .. coupon
redis.call('HSET', KEYS[2], ARGV[1], after)
return {'ok', after}
