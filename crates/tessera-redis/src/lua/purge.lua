-- KEYS[1] the shard's expiry index. ARGV: base, now, limit, deadline.
-- Removes up to limit sessions expired at or before now; returns how many;
-- LATE past the deadline.
if late() then return LATE end
local base, now = ARGV[1], tonumber(ARGV[2])
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[3])) do
  local id = string.sub(m, 17)
  local e = redis.call('HGET', base .. 'r:' .. hex(id), 'e')
  if not e then
    unindex(base, m)
    n = n + 1
  elseif tonumber(e) <= now then
    drop(base, id)
    n = n + 1
  else
    -- The index disagrees with the record: trust the record.
    redis.call('ZADD', KEYS[1], e, m)
  end
end
return n
