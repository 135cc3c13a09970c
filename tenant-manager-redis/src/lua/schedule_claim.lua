-- Claims the due ticks, atomically: each due schedule's next tick moves to the first multiple
-- of its interval after now (missed ticks are skipped), so no other caller gets this tick.
-- KEYS[1] due set (member <tenant>/<name>, score = next tick in ms)
-- ARGV[1] most ticks;  ARGV[2] prefix of the tenants' schedules hashes
-- Returns {schedule JSON, due ms, schedule JSON, due ms, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for i = 1, #due, 2 do
  local member, score = due[i], tonumber(due[i + 1])
  local sep = string.find(member, '/', 1, true)
  local def = sep and redis.call('HGET', ARGV[2] .. string.sub(member, 1, sep - 1), string.sub(member, sep + 1))
  if not def then
    redis.call('ZREM', KEYS[1], member)
  else
    local every = cjson.decode(def)['every']
    local every_ms = math.max(1, tonumber(every['secs']) * 1000 + math.floor(tonumber(every['nanos']) / 1000000))
    local steps = math.floor((now - score) / every_ms) + 1
    redis.call('ZADD', KEYS[1], string.format('%d', score + steps * every_ms), member)
    table.insert(out, def)
    table.insert(out, string.format('%d', score))
  end
end
return out
