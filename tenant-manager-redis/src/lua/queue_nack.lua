-- Fails a delivery if it is still the current one: schedules a retry, or dead-letters the job
-- once it has been delivered max-attempts times.
-- KEYS[1] stream;  KEYS[2] job hash;  KEYS[3] delayed set;  KEYS[4] dead-letter stream
-- KEYS[5] turns;  KEYS[6] ready count;  KEYS[7] signal
-- ARGV[1] group;  ARGV[2] entry id;  ARGV[3] attempt;  ARGV[4] error;  ARGV[5] delay ms
-- ARGV[6] max attempts;  ARGV[7] job id;  ARGV[8] dead-letter stream max length
-- ARGV[9] job key prefix;  ARGV[10] lane prefix
-- Returns 1 when retried, 2 when dead-lettered, 0 for a stale receipt.
local stream, job_key, delayed, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, entry_id, attempt = ARGV[1], ARGV[2], ARGV[3]
if not is_current(stream, group, entry_id, job_key, attempt) then
  return 0
end
if tonumber(attempt) >= tonumber(ARGV[6]) then
  dead_letter(stream, group, entry_id, dead, ARGV[8], job_key, ARGV[7], ARGV[4])
  return 2
end
settle(stream, group, entry_id)
redis.call('HSET', job_key, 'last_error', ARGV[4])
local delay = tonumber(ARGV[5])
if delay <= 0 then
  make_ready(ARGV[9], ARGV[10], KEYS[5], KEYS[6], KEYS[7], ARGV[7])
else
  redis.call('ZADD', delayed, now_ms() + delay, ARGV[7])
end
return 1
