-- Give a tenant its SMS number in the number index (the index is the source of truth).
-- KEYS[1] = number index (is:channels:numbers): number -> tenant
-- ARGV[1] = tenant, ARGV[2] = the number's digits ('' removes the tenant's number)
-- Returns the tenant holding ARGV[2] if that is another tenant (nothing changed), else false.
-- Every other number of ARGV[1] is dropped, so a repeat after a crash converges.
local tenant, digits = ARGV[1], ARGV[2]
if digits ~= '' then
  local holder = redis.call('HGET', KEYS[1], digits)
  if holder and holder ~= tenant then
    return holder
  end
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == tenant and all[i] ~= digits then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
if digits ~= '' then
  redis.call('HSET', KEYS[1], digits, tenant)
end
return false
