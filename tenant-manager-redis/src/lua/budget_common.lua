-- Connection budget of one database server, shared by instances through leases.
-- KEYS[1] sorted set of holders scored by the expiry of their slots (ms, Redis clock);
-- KEYS[2] hash holder -> slots; KEYS[3] the contended marker (set for a lease time when an
-- acquire got less than it asked for). All three share one hash tag.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drops every holder whose slots expired (score <= now), with its count.
local function reclaim(now)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, holder in ipairs(expired) do
    redis.call('HDEL', KEYS[2], holder)
  end
  if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  end
end

-- Slots of all live holders.
local function total()
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
    sum = sum + tonumber(v)
  end
  return sum
end

local function contended()
  return redis.call('EXISTS', KEYS[3])
end

-- Stores `held` slots of `holder` expiring at `expires`, or forgets the holder at 0.
local function store(holder, held, expires)
  if held > 0 then
    redis.call('HSET', KEYS[2], holder, held)
    if expires then
      redis.call('ZADD', KEYS[1], expires, holder)
    end
  else
    redis.call('HDEL', KEYS[2], holder)
    redis.call('ZREM', KEYS[1], holder)
  end
end

local now = now_ms()
reclaim(now)
