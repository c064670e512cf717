-- Reserve a range of serials for a batch, never past the profile's space.
-- KEYS[1] = serial counter of a tenant and profile (is:{TENANT}:serial:PROFILE)
-- ARGV[1] = count, ARGV[2] = first serial of the profile, ARGV[3] = end of the profile's space
-- Returns the first serial of the range, or an error when the space is exhausted.
local count = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local space_end = tonumber(ARGV[3])
local next_serial = tonumber(redis.call('GET', KEYS[1]) or base)
if next_serial + count > space_end then
  return redis.error_reply('SERIALS_EXHAUSTED ' .. (space_end - next_serial))
end
redis.call('SET', KEYS[1], next_serial + count)
return next_serial
