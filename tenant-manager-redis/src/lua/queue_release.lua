-- Hands a delivery back without counting it, if it is still the current one: the job's
-- attempt counter goes back by one and the job is ready again after the delay.
-- KEYS[1] stream;  KEYS[2] job hash;  KEYS[3] delayed set;  KEYS[4] turns;  KEYS[5] ready count
-- KEYS[6] signal
-- ARGV[1] group;  ARGV[2] entry id;  ARGV[3] attempt;  ARGV[4] delay ms;  ARGV[5] job id
-- ARGV[6] job key prefix;  ARGV[7] lane prefix
-- Returns 1 when handed back, 0 for a stale receipt.
local stream, job_key, delayed = KEYS[1], KEYS[2], KEYS[3]
local group, entry_id, attempt = ARGV[1], ARGV[2], ARGV[3]
if not is_current(stream, group, entry_id, job_key, attempt) then
  return 0
end
settle(stream, group, entry_id)
redis.call('HINCRBY', job_key, 'attempts', -1)
local delay = tonumber(ARGV[4])
if delay <= 0 then
  make_ready(ARGV[6], ARGV[7], KEYS[4], KEYS[5], KEYS[6], ARGV[5])
else
  redis.call('ZADD', delayed, now_ms() + delay, ARGV[5])
end
return 1
