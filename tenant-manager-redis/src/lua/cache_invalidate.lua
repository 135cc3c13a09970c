-- Drops a tenant record, advances the invalidation epoch (so fills that read the epoch before
-- are refused) and tells every instance, atomically.
-- KEYS[1]  record key;  KEYS[2] invalidation epoch
-- ARGV[1]  invalidation channel;  ARGV[2] tenant id
-- Returns the number of instances that received the message.
redis.call('DEL', KEYS[1])
current_epoch(KEYS[2])
redis.call('INCR', KEYS[2])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
