-- Undo the claim a check made in the round trip that also refused it (429): a refused
-- request must leave the code as it found it, or the buyer's own retry reads "checked
-- before" and earns nothing.
-- KEYS[1] = scan bucket of the code (is:{TENANT/sN}:scan:B)
-- KEYS[2] = claims outbox of the segment (is:{TENANT/sN}:claims)
-- KEYS[3] = the day's check counters of the segment (is:{TENANT/sN}:stats:YYYYMMDD)
-- ARGV[1] = bucket field of the code, ARGV[2] = the record the verify script returned,
-- ARGV[3] = the outbox entry it added, ARGV[4] = sku, ARGV[5] = region or '-',
-- ARGV[6] = channel name
-- Returns 1 if undone, 0 if the record changed since (another check came in: it stays).
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if rec ~= ARGV[2] then return 0 end
local flags, count, first, last, claimed, phones, regions = struct.unpack('>BHIIIHB', rec)
local result = count == 1 and 'genuine' or 'already_verified'
if count <= 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  local region = string.sub(rec, 19)
  redis.call('HSET', KEYS[1], ARGV[1],
    struct.pack('>BHIIIHB', flags, count - 1, first, last, 0, phones, regions) .. region)
end
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'r:' .. result, -1)
redis.call('HINCRBY', KEYS[3], 'sku:' .. ARGV[4], -1)
redis.call('HINCRBY', KEYS[3], 'region:' .. ARGV[5], -1)
redis.call('HINCRBY', KEYS[3], 'ch:' .. ARGV[6], -1)
return 1
