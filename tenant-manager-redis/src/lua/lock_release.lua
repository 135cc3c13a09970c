-- Deletes a lock only if it still holds the caller's owner token.
-- KEYS[1] lock key; ARGV[1] owner token. Returns 1 when released, 0 when not the owner.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
