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
