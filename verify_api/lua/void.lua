-- Void codes spoiled at printing: from now on they answer `revoked`.
-- KEYS[1] = scan bucket (is:{TENANT/sN}:scan:B)
-- ARGV = bucket fields (serial % 256) of the codes to void, all in this bucket
-- Returns per code the checks it had before (0: never scanned), or -1 if it was voided
-- already; voiding twice changes nothing.
local out = {}
for i, field in ipairs(ARGV) do
  local rec = redis.call('HGET', KEYS[1], field)
  if not rec then
    out[i] = 0
    redis.call('HSET', KEYS[1], field, struct.pack('>BHIIIHB', 1, 0, 0, 0, 0, 0, 0))
  elseif string.byte(rec, 1) % 2 == 1 then
    out[i] = -1
  else
    out[i] = struct.unpack('>H', rec, 2)
    redis.call('HSET', KEYS[1], field, string.char(string.byte(rec, 1) + 1) .. string.sub(rec, 2))
  end
end
return out
