-- Removes a schedule. KEYS[1] due set;  KEYS[2] the tenant's schedules hash
-- ARGV[1] member (<tenant>/<name>);  ARGV[2] name.  Returns 1 when there was one, else 0.
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[2])
