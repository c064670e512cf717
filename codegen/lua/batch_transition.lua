-- Move a batch from one lifecycle state to the next, or say why not.
-- KEYS[1] = batch record (is:{TENANT}:batch:ID)
-- ARGV[1] = target state, ARGV[2] = comma-separated states allowed before it,
-- ARGV[3] = name of the timestamp field to set, ARGV[4] = now (seconds)
-- Returns the previous state; 'NO_BATCH' or 'BAD_STATE <state>' as errors.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return redis.error_reply('NO_BATCH')
end
if state == ARGV[1] then
  return state
end
for allowed in string.gmatch(ARGV[2], '[^,]+') do
  if allowed == state then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[3], ARGV[4])
    return state
  end
end
return redis.error_reply('BAD_STATE ' .. state)
