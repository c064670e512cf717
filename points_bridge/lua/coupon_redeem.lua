-- Use a coupon once, before it expires.
-- KEYS[1] = coupon states (is:{T}:coupon-states): code -> "issued <expires_at>" |
--           "used <at> <shop>" | "void <at>"
-- ARGV[1] = code, ARGV[2] = now (unix seconds), ARGV[3] = shop ('-' when none given)
-- Returns {'used', state} when this call used it, else {why, state} with why one of
-- unknown | already_used | void | expired (nothing changed).
local state = redis.call('HGET', KEYS[1], ARGV[1])
if not state then return {'unknown', ''} end
local kind, rest = string.match(state, '^(%S+) (.*)$')
if kind == 'used' then return {'already_used', state} end
if kind == 'void' then return {'void', state} end
local expires = tonumber(rest)
if expires > 0 and tonumber(ARGV[2]) >= expires then return {'expired', state} end
local after = 'used ' .. ARGV[2] .. ' ' .. ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], after)
return {'used', after}
