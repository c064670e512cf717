-- Delete a string key only while it still holds the expected value (compare-and-delete).
-- KEYS[1] = the key (a phone index: is:{T/p+E164})
-- ARGV[1] = the value it must hold (a card number)
-- Returns 1 if deleted, 0 if it held something else or nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
