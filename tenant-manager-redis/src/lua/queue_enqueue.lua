-- KEYS[1] job hash;  KEYS[2] delayed set;  KEYS[3] turns;  KEYS[4] ready count;  KEYS[5] signal
-- ARGV[1] job id;  ARGV[2] kind;  ARGV[3] tenant id or '';  ARGV[4] payload (JSON)
-- ARGV[5] enqueued at (unix ns);  ARGV[6] job key prefix;  ARGV[7] lane prefix;  ARGV[8] delay ms
redis.call('HSET', KEYS[1],
  'kind', ARGV[2],
  'tenant', ARGV[3],
  'payload', ARGV[4],
  'enqueued_at', ARGV[5],
  'attempts', '0')
local delay = tonumber(ARGV[8])
if delay > 0 then
  redis.call('ZADD', KEYS[2], now_ms() + delay, ARGV[1])
else
  make_ready(ARGV[6], ARGV[7], KEYS[3], KEYS[4], KEYS[5], ARGV[1])
end
return 1
