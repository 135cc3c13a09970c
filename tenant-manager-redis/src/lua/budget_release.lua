-- ARGV[1] holder; ARGV[2] slots to give back. Returns the slots the holder still holds.
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
held = math.max(held - tonumber(ARGV[2]), 0)
store(ARGV[1], held, nil)
return held
