-- GCRA lease: claims up to `want` cells of a rate key's allowance at once (at least `need`,
-- else none), after giving back the unused cells of this instance's previous lease when the
-- key still holds the TAT that lease left (nobody claimed since, so the give-back restores
-- exactly the state the used cells alone would have left). Same key and formulas as
-- gcra.lua, in microsecond ticks on the server's clock: instances that check per request and
-- instances that lease share one limit.
-- KEYS[1]  rate key (holds the theoretical arrival time, TAT, in microseconds)
-- ARGV[1]  emission interval in microseconds (ceil(window / limit))
-- ARGV[2]  capacity in microseconds (limit * interval: the whole burst)
-- ARGV[3]  need: fewest cells worth granting (1 ..= limit)
-- ARGV[4]  want: most cells to grant (>= need)
-- ARGV[5]  TAT the previous lease left (0: none)
-- ARGV[6]  microseconds to give back if the key still holds that TAT (0: none)
-- Returns {granted, available_after, backlog_us, retry_us, tat, given_back (0|1)}: when
-- granted is 0, retry_us is the time until `need` cells are available.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local give_back = tonumber(ARGV[6])

local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local tat = stored
local given_back = 0
if give_back > 0 and stored == tonumber(ARGV[5]) then
  tat = stored - give_back
  given_back = 1
end

local base = tat
if base < now then
  base = now
end
local available = math.floor((capacity - (base - now)) / interval)
if available < 0 then
  available = 0
end

if available < need then
  if given_back == 1 then
    if tat > now then
      redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000))
    else
      redis.call('DEL', KEYS[1])
    end
  end
  return {0, available, base - now, base + need * interval - capacity - now, tat, given_back}
end

local granted = math.min(want, available)
local new_tat = base + granted * interval
-- Integers below 1e20 pass to Redis in plain decimal, exactly.
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {granted, available - granted, new_tat - now, 0, new_tat, given_back}
