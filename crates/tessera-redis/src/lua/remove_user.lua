-- KEYS[1] a user's index in this shard. ARGV: base, user key, now, deadline.
-- Removes every session of the user in this shard; returns how many were
-- live; LATE past the deadline. Records a TTL already dropped leave their shard-index entries to
-- purge, which needs them to count what expired.
if late() then return LATE end
local uk, base, u, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = 0
for _, m in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local id = string.sub(m, 17)
  local f = redis.call('HMGET', base .. 'r:' .. hex(id), 'e', 'u')
  if f[1] and f[2] == u then
    drop(base, id)
    if tonumber(f[1]) > now then n = n + 1 end
  end
end
redis.call('DEL', uk)
return n
