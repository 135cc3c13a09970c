-- ARGV[1] holder; ARGV[2] lease time in ms.
-- Returns {slots the holder holds (0 once they expired: never brought back), contended}.
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if held > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return {held, contended()}
