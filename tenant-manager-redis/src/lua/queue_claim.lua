-- Takes the next job for a consumer, in one round trip:
--   1. moves retries that are due from the delayed set back to the stream;
--   2. reclaims an entry left pending longer than the visibility timeout (its consumer
--      crashed or stalled), dead-lettering it instead when it has used all its attempts;
--   3. otherwise reads an entry of the stream not delivered yet (left by an older version,
--      which put every ready job in the stream), or takes the oldest job of the lane whose
--      turn it is (round robin over the tenants' lanes: the lane goes to the back of the
--      turns while it still holds jobs) and delivers it through the stream.
-- Every delivery increments the job's attempt counter, which makes older receipts stale.
-- Reclaim scans the pending entries from a cursor kept between calls, so entries deep in a
-- long pending list are found too, with bounded work per call.
-- KEYS[1] stream;  KEYS[2] delayed set;  KEYS[3] dead-letter stream;  KEYS[4] reclaim cursor
-- KEYS[5] turns;  KEYS[6] ready count;  KEYS[7] signal
-- ARGV[1] group;  ARGV[2] consumer;  ARGV[3] visibility timeout ms;  ARGV[4] job key prefix
-- ARGV[5] max attempts;  ARGV[6] dead-letter stream max length;  ARGV[7] lane prefix
-- Returns {'1', entry id, job id, attempt, kind, tenant, payload, enqueued_at, last_error}
-- or {'0', last generated id of the stream, ms until the next delayed retry or -1}.
local stream, delayed, dead, cursor_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local turns, ready_count, signal = KEYS[5], KEYS[6], KEYS[7]
local lane_prefix = ARGV[7]
local group, consumer = ARGV[1], ARGV[2]
local visibility = ARGV[3]
local job_prefix = ARGV[4]
local max_attempts = tonumber(ARGV[5])
local dead_max = ARGV[6]
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  if redis.call('EXISTS', job_prefix .. id) == 1 then
    make_ready(job_prefix, lane_prefix, turns, ready_count, signal, id)
  end
end

local function job_id_of(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'job' then
      return fields[i + 1]
    end
  end
  return nil
end

-- Delivers entry {id, fields}; nil when its job is gone or was dead-lettered.
local function deliver(entry, reclaimed)
  local entry_id = entry[1]
  local job_id = job_id_of(entry[2])
  local job_key = job_prefix .. (job_id or '')
  if not job_id or redis.call('EXISTS', job_key) == 0 then
    settle(stream, group, entry_id)
    return nil
  end
  if reclaimed then
    local attempts = tonumber(redis.call('HGET', job_key, 'attempts') or '0') or 0
    if attempts >= max_attempts then
      local err = redis.call('HGET', job_key, 'last_error')
      if not err or err == '' then
        err = 'visibility timeout expired'
      end
      dead_letter(stream, group, entry_id, dead, dead_max, job_key, job_id,
        'not acknowledged within the visibility timeout after ' .. attempts ..
        ' deliveries; last error: ' .. err)
      return nil
    end
  end
  local attempt = redis.call('HINCRBY', job_key, 'attempts', 1)
  local job = redis.call('HMGET', job_key, 'kind', 'tenant', 'payload', 'enqueued_at', 'last_error')
  return {'1', entry_id, job_id, tostring(attempt), job[1] or '', job[2] or '', job[3] or 'null',
    job[4] or '0', job[5] or ''}
end

local cursor = redis.call('GET', cursor_key) or '0-0'
for _ = 1, 10 do
  local claimed = redis.pcall('XAUTOCLAIM', stream, group, consumer, visibility, cursor, 'COUNT', 1)
  if type(claimed) == 'table' and claimed.err then
    if string.find(claimed.err, 'NOGROUP', 1, true) then
      redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    else
      return redis.error_reply(claimed.err)
    end
    claimed = {'0-0', {}}
  end
  cursor = claimed[1]
  local entry = claimed[2][1]
  local job = entry and deliver(entry, true)
  if job then
    redis.call('SET', cursor_key, cursor)
    return job
  end
  if cursor == '0-0' then
    break
  end
end
redis.call('SET', cursor_key, cursor)

for _ = 1, 10 do
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
  if not read then
    break
  end
  local entry = read[1][2][1]
  if not entry then
    break
  end
  local job = deliver(entry, false)
  if job then
    return job
  end
end

for _ = 1, 10 do
  local tenant = redis.call('LPOP', turns)
  if not tenant then
    break
  end
  local lane = lane_prefix .. tenant
  local job_id = redis.call('LPOP', lane)
  if redis.call('LLEN', lane) > 0 then
    redis.call('RPUSH', turns, tenant)
  end
  if job_id then
    redis.call('DECR', ready_count)
    redis.call('XADD', stream, '*', 'job', job_id)
    local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
    local entry = read and read[1][2][1]
    local job = entry and deliver(entry, false)
    if job then
      return job
    end
  end
end

local last_id = last_generated_id(signal)
local next_due = -1
local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if first[2] then
  next_due = math.max(0, tonumber(first[2]) - now)
end
return {'0', last_id, tostring(next_due)}
