-- Removes from the group the consumers idle longer than a threshold that hold no pending
-- entries, in one atomic step: no delivery can reach a consumer between the check and the
-- delete. A consumer that still holds entries is kept (XGROUP DELCONSUMER would drop them from
-- the pending list, losing the jobs); the claim script reclaims them after the visibility
-- timeout, and a later pass removes the consumer.
-- KEYS[1] stream
-- ARGV[1] group;  ARGV[2] idle threshold ms;  ARGV[3] most consumers to delete
-- Returns the number of consumers deleted (0 when the stream or the group does not exist yet).
local stream, group = KEYS[1], ARGV[1]
local threshold = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])

local consumers = redis.pcall('XINFO', 'CONSUMERS', stream, group)
if type(consumers) == 'table' and consumers.err then
  if string.find(consumers.err, 'NOGROUP', 1, true) or
     string.find(consumers.err, 'no such key', 1, true) then
    return 0
  end
  return redis.error_reply(consumers.err)
end

local deleted = 0
for _, consumer in ipairs(consumers) do
  if deleted >= limit then
    break
  end
  local name, pending, idle
  for i = 1, #consumer, 2 do
    local field = consumer[i]
    if field == 'name' then
      name = consumer[i + 1]
    elseif field == 'pending' then
      pending = tonumber(consumer[i + 1])
    elseif field == 'idle' then
      idle = tonumber(consumer[i + 1])
    end
  end
  if name and pending == 0 and idle and idle > threshold then
    redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
    deleted = deleted + 1
  end
end
return deleted
