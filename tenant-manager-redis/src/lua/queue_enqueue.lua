-- KEYS[1] stream;  KEYS[2] job hash
-- ARGV[1] job id;  ARGV[2] kind;  ARGV[3] tenant id or '';  ARGV[4] payload (JSON)
-- ARGV[5] enqueued at (unix ns)
redis.call('HSET', KEYS[2],
  'kind', ARGV[2],
  'tenant', ARGV[3],
  'payload', ARGV[4],
  'enqueued_at', ARGV[5],
  'attempts', '0')
redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
return 1
