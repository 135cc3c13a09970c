-- Usage quota check-and-consume (or release), atomic.
-- KEYS[1]  usage hash of the tenant
-- ARGV[1]  field (the usage kind)
-- ARGV[2]  amount: positive consumes if the result stays within max, negative releases
-- ARGV[3]  max
-- Returns {allowed (0|1), used after the call}.
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
local amount = tonumber(ARGV[2])
local max = tonumber(ARGV[3])

local new = used + amount
if amount < 0 then
  if new < 0 then
    new = 0
  end
elseif new > max then
  return {0, used}
end
if new ~= used then
  redis.call('HSET', KEYS[1], ARGV[1], new)
end
return {1, new}
