-- Helpers shared by the queue scripts (prepended to each of them).

-- Milliseconds of the server clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The consumer holding delivery (entry_id, attempt) of the job in job_key while it is still the
-- current one (the job's delivery counter has not moved on and the entry is still pending in
-- the group), else nil.
local function current_holder(stream, group, entry_id, job_key, attempt)
  local attempts = redis.call('HGET', job_key, 'attempts')
  if not attempts or tonumber(attempts) ~= tonumber(attempt) then
    return nil
  end
  local pending = redis.pcall('XPENDING', stream, group, entry_id, entry_id, 1)
  if type(pending) ~= 'table' or pending.err ~= nil or #pending == 0 then
    return nil
  end
  return pending[1][2]
end

-- Whether delivery (entry_id, attempt) of the job in job_key is still the current one.
local function is_current(stream, group, entry_id, job_key, attempt)
  return current_holder(stream, group, entry_id, job_key, attempt) ~= nil
end

-- Removes a delivered entry from the group and the stream.
local function settle(stream, group, entry_id)
  redis.call('XACK', stream, group, entry_id)
  redis.call('XDEL', stream, entry_id)
end

-- Moves a job to the dead-letter stream with its last error, and forgets its delivery.
local function dead_letter(stream, group, entry_id, dead, dead_max, job_key, job_id, err)
  local job = redis.call('HMGET', job_key, 'kind', 'tenant', 'payload', 'enqueued_at', 'attempts')
  redis.call('XADD', dead, 'MAXLEN', '~', dead_max, '*',
    'job', job_id,
    'kind', job[1] or '',
    'tenant', job[2] or '',
    'payload', job[3] or 'null',
    'enqueued_at', job[4] or '0',
    'attempts', job[5] or '0',
    'last_error', err)
  settle(stream, group, entry_id)
  redis.call('DEL', job_key)
end

-- Puts job_id in its tenant's lane (the tenant recorded in its hash; '' for none) and wakes
-- waiting consumers. A lane that was empty joins the back of the turns, so a lane is in the
-- turns exactly while it holds jobs.
local function make_ready(job_prefix, lane_prefix, turns, ready_count, signal, job_id)
  local tenant = redis.call('HGET', job_prefix .. job_id, 'tenant') or ''
  if redis.call('RPUSH', lane_prefix .. tenant, job_id) == 1 then
    redis.call('RPUSH', turns, tenant)
  end
  redis.call('INCR', ready_count)
  redis.call('XADD', signal, 'MAXLEN', '~', 16, '*', 'r', '1')
end

-- The last entry id generated in a stream ('0-0' when it does not exist).
local function last_generated_id(stream)
  local info = redis.pcall('XINFO', 'STREAM', stream)
  if type(info) ~= 'table' or info.err ~= nil then
    return '0-0'
  end
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return info[i + 1]
    end
  end
  return '0-0'
end
