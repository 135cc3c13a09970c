-- The invalidation epoch at KEYS[epoch_key], created when missing (a new or restarted Redis)
-- from the server's clock in microseconds, not from 0: the counter never comes back to a value
-- a lookup read before the restart, so a fill made with that old epoch is always refused.
local function current_epoch(epoch_key)
  local epoch = redis.call('GET', epoch_key)
  if epoch then
    return epoch
  end
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%06d', tonumber(now[2]))
  redis.call('SET', epoch_key, epoch, 'NX')
  return redis.call('GET', epoch_key)
end
