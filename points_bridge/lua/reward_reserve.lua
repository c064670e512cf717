-- Take one item of a reward's stock for a redemption, once per redemption id.
-- KEYS[1] = stock hash        (is:{T}:reward-stock): item -> items left
-- KEYS[2] = facts hash        (is:{T}:redemptions): id -> JSON facts (opaque here)
-- KEYS[3] = states hash       (is:{T}:redemption-states): id -> "<state> <entry> <coupon>"
-- KEYS[4] = member's ids      (is:{T}:redemptions:CARD): id by time
-- ARGV[1] = item, ARGV[2] = redemption id, ARGV[3] = facts JSON, ARGV[4] = now
-- Returns {'held'} when one item was taken (state "held - -"),
--         {'seen', state, facts} when the id was met before (nothing taken again),
--         {'out', left} when no item is left (nothing written).
-- Stock is an integer string; it is compared as a number only after HGET, and
-- changed with HINCRBY, so no figure round-trips through a double.
local seen = redis.call('HGET', KEYS[3], ARGV[2])
if seen then return {'seen', seen, redis.call('HGET', KEYS[2], ARGV[2]) or ''} end
local left = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
if tonumber(left) < 1 then return {'out', left} end
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], 'held - -')
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
return {'held'}
