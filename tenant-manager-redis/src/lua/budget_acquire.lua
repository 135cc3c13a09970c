-- ARGV[1] holder; ARGV[2] slots wanted; ARGV[3] budget; ARGV[4] lease time in ms.
-- Returns {slots the holder holds, 1 when the server is contended}.
local holder = ARGV[1]
local want = tonumber(ARGV[2])
local ttl = tonumber(ARGV[4])
local free = math.max(tonumber(ARGV[3]) - total(), 0)
local grant = math.min(want, free)
if grant < want then
  redis.call('SET', KEYS[3], '1', 'PX', ttl)
end
local held = tonumber(redis.call('HGET', KEYS[2], holder) or '0') + grant
store(holder, held, now + ttl)
return {held, contended()}
