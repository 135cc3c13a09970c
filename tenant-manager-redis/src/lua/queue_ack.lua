-- Acknowledges a delivery if it is still the current one.
-- KEYS[1] stream;  KEYS[2] job hash
-- ARGV[1] group;  ARGV[2] entry id;  ARGV[3] attempt of the delivery
-- Returns 1 when acknowledged, 0 for a stale receipt.
if not is_current(KEYS[1], ARGV[1], ARGV[2], KEYS[2], ARGV[3]) then
  return 0
end
settle(KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
