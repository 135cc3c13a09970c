-- Caches a tenant record under its id and points its aliases at the id.
-- KEYS[1]     record key;  KEYS[2..]  alias keys (slug, domain)
-- ARGV[1]     record (JSON);  ARGV[2] TTL in ms;  ARGV[3] tenant id
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[3], 'PX', ARGV[2])
end
return 1
