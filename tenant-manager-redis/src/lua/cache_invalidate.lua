-- Drops a tenant record and tells every instance.
-- KEYS[1]  record key
-- ARGV[1]  invalidation channel;  ARGV[2] tenant id
-- Returns the number of instances that received the message.
redis.call('DEL', KEYS[1])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
