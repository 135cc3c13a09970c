-- GCRA rate limit check-and-consume, one round trip, on the server's clock. Same formulas as
-- tenant_manager_core::gcra, in microsecond ticks.
-- KEYS[1]  rate key (holds the theoretical arrival time, TAT, in microseconds)
-- ARGV[1]  emission interval in microseconds (ceil(window / limit))
-- ARGV[2]  capacity in microseconds (limit * interval: the whole burst)
-- ARGV[3]  cost (requests to admit at once, 1 ..= limit)
-- Returns {allowed (0|1), remaining, reset_after_us, retry_after_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local base = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if base < now then
  base = now
end
local new_tat = base + cost * interval

local function remaining(backlog)
  local r = math.floor((capacity - backlog) / interval)
  if r < 0 then
    return 0
  end
  return r
end

if new_tat - now > capacity then
  return {0, remaining(base - now), base - now, new_tat - capacity - now}
end

local ttl_ms = math.ceil((new_tat - now) / 1000)
-- Integers below 1e20 pass to Redis in plain decimal, exactly.
redis.call('SET', KEYS[1], new_tat, 'PX', ttl_ms)
return {1, remaining(new_tat - now), new_tat - now, 0}
