-- Count one request against several rate limits (client IP, phone): fixed windows.
-- KEYS[2i-1] = counter of subject i's current window (is:{TENANT/rl}:SUBJECT:W)
-- KEYS[2i]   = counter of subject i's previous window (is:{TENANT/rl}:SUBJECT:W-1)
-- ARGV[2i-1] = cost of this request for subject i, ARGV[2i] = its window length in seconds
-- Returns {current count including this request, previous count} per subject, flattened;
-- the caller weighs the previous window by how much the sliding window still overlaps it.
local out = {}
for i = 1, #KEYS, 2 do
  local cost = tonumber(ARGV[i])
  local current = redis.call('INCRBY', KEYS[i], cost)
  if current == cost then
    redis.call('EXPIRE', KEYS[i], 2 * tonumber(ARGV[i + 1]))
  end
  out[#out + 1] = current
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
end
return out
