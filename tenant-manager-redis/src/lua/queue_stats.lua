-- Queue depth. KEYS[1] stream;  KEYS[2] delayed set;  KEYS[3] dead-letter stream
-- KEYS[4] ready count (the jobs in the tenants' lanes)
-- ARGV[1] group.  Returns {ready, in flight, dead}.
local length = redis.call('XLEN', KEYS[1])
local in_flight = 0
local summary = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(summary) == 'table' and summary.err == nil then
  in_flight = tonumber(summary[1]) or 0
end
local lanes = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
local ready = length - in_flight + redis.call('ZCARD', KEYS[2]) + lanes
if ready < 0 then
  ready = 0
end
return {ready, in_flight, redis.call('XLEN', KEYS[3])}
