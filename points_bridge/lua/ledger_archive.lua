-- Remove a member's ledger entries older than a cut-off once they are safe in an archive file.
-- KEYS[1] = member hash (is:{T/mK}:m:CARD): gains archived (how many entries moved out)
--           and opened (the opening balance) when the entry of ARGV[4] leaves
-- KEYS[2] = ledger stream (is:{T/mK}:ledger:CARD)
-- KEYS[3] = idem hash (is:{T/mK}:idem:CARD)
-- ARGV[1] = the cut-off id: entries with a smaller id leave (XTRIM MINID)
-- ARGV[2] = how many entries the archive file holds for this member
-- ARGV[3] = the id of the last of them
-- ARGV[4] = the idempotency key whose posting is kept on the record as its points (the
--           import's opening balance: a re-run of the import file must still see it)
-- Nothing is trimmed unless the stream still holds exactly the entries the file holds
-- (another archive run, or a restore, may have moved them): then 0, else 1.
-- An entry's idempotency key leaves with it: a key is honoured while its entry is here.
local old = redis.call('XRANGE', KEYS[2], '-', '(' .. ARGV[1])
if #old ~= tonumber(ARGV[2]) or #old == 0 or old[#old][1] ~= ARGV[3] then return 0 end
for _, entry in ipairs(old) do
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  if f.idem and f.idem ~= '' then
    local seen = redis.call('HGET', KEYS[3], f.idem)
    if seen and string.match(seen, ' (%S+)$') == entry[1] then
      if f.idem == ARGV[4] then redis.call('HSET', KEYS[1], 'opened', f.delta) end
      redis.call('HDEL', KEYS[3], f.idem)
    end
  end
end
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1])
if redis.call('XLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) end
redis.call('HINCRBY', KEYS[1], 'archived', ARGV[2])
return 1
