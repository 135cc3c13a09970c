-- GCRA rate limit check-and-consume, one round trip, on the server's clock.
-- KEYS[1]  rate key (holds the theoretical arrival time, TAT, in microseconds)
-- ARGV[1]  emission interval T in microseconds (window / limit)
-- ARGV[2]  tolerance tau in microseconds (T * limit: the whole burst)
-- ARGV[3]  cost (requests to admit at once)
-- Returns {allowed (0|1), remaining, reset_after_us, retry_after_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local new_tat = tat + cost * interval
local allow_at = new_tat - tau

if allow_at > now then
  local remaining = math.floor((tau - (tat - now)) / interval)
  if remaining < 0 then
    remaining = 0
  end
  return {0, remaining, tat - now, allow_at - now}
end

local ttl_ms = math.ceil((new_tat - now) / 1000)
if ttl_ms < 1 then
  ttl_ms = 1
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
