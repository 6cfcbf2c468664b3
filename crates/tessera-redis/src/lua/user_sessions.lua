-- KEYS[1] a user's index in this shard. ARGV: base, user key, now.
-- Returns id, version, expires_at, user key, org key, sealed for each live
-- session, flattened.
local uk, base, u, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', uk, '-inf', server_now())
local out = {}
for _, m in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local id = string.sub(m, 17)
  local f = redis.call('HMGET', base .. 'r:' .. hex(id), 'v', 'e', 'u', 'o', 'd')
  if f[1] and tonumber(f[2]) > now and f[3] == u then
    out[#out + 1] = id
    for i = 1, 5 do out[#out + 1] = f[i] end
  end
end
return out
