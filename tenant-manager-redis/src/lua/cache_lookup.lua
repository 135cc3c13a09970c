-- Looks a tenant up in one round trip and reads the invalidation epoch with it.
-- KEYS[1]  record key, or alias key (slug, domain) holding a tenant id
-- KEYS[2]  invalidation epoch (a counter, created from the clock when missing)
-- ARGV[1]  prefix of the record keys when KEYS[1] is an alias, '' when it is the record key
-- Returns { epoch, record (JSON) } on a hit, { epoch } on a miss.
local value = redis.call('GET', KEYS[1])
if value and ARGV[1] ~= '' then
  value = redis.call('GET', ARGV[1] .. value)
end
local epoch = current_epoch(KEYS[2])
if value then
  return { epoch, value }
end
return { epoch }
