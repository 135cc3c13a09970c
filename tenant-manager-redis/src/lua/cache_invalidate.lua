-- Drops a tenant record, leaving a short tombstone, and tells every instance.
-- KEYS[1]  record key
-- ARGV[1]  tombstone TTL in ms;  ARGV[2] invalidation channel;  ARGV[3] tenant id
-- Returns the number of instances that received the message.
redis.call('SET', KEYS[1], '~', 'PX', ARGV[1])
return redis.call('PUBLISH', ARGV[2], ARGV[3])
