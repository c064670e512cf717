-- Delete a phone index only while it still names the expected card (compare-and-delete).
-- KEYS[1] = the key (a phone index: is:{T/p+E164})
-- ARGV[1] = the card it must name: the value itself, or CARD?AT (a card reserved at AT,
--           members.index_value)
-- Returns 1 if deleted, 0 if it held something else or nothing.
local held = redis.call('GET', KEYS[1])
if held and (held == ARGV[1] or string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '?') then
  return redis.call('DEL', KEYS[1])
end
return 0
