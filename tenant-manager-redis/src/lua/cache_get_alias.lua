-- Looks a tenant up through an alias (slug or domain) in one round trip.
-- KEYS[1]  alias key (holds a tenant id)
-- ARGV[1]  prefix of the tenant record keys
-- Returns the record (JSON), or nil.
local id = redis.call('GET', KEYS[1])
if not id then
  return false
end
return redis.call('GET', ARGV[1] .. id)
