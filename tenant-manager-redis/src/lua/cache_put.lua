-- Caches a tenant record under its id and points its aliases at the id; when an epoch is
-- given, only if no invalidation advanced the epoch since the caller read it (a missing epoch,
-- after a restart, matches no epoch read before).
-- KEYS[1]     invalidation epoch;  KEYS[2] record key;  KEYS[3..] alias keys (slug, domain)
-- ARGV[1]     record (JSON);  ARGV[2] TTL in ms;  ARGV[3] tenant id
-- ARGV[4]     expected epoch, or '' to write unconditionally
-- Returns 1 when written, 0 when refused.
if ARGV[4] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[4] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[3], 'PX', ARGV[2])
end
return 1
