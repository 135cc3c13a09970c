-- Adds or replaces a schedule; its first tick is due one interval from now (server clock).
-- KEYS[1] due set;  KEYS[2] the tenant's schedules hash
-- ARGV[1] member (<tenant>/<name>);  ARGV[2] name;  ARGV[3] schedule JSON;  ARGV[4] interval ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[4])), ARGV[1])
return 1
