-- Extends a lock's time to live only if it still holds the caller's owner token.
-- KEYS[1] lock key; ARGV[1] owner token; ARGV[2] new TTL in ms.
-- Returns 1 when extended, 0 when not the owner.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
