-- KEYS[1] record. ARGV: base, id, expected version, sealed, expires_at, now,
-- deadline. Returns the new version, 0 on a version conflict, -1 if there is
-- no live session; LATE past the deadline.
if late() then return LATE end
local rk = KEYS[1]
local f = redis.call('HMGET', rk, 'v', 'e', 'u', 'o')
if not f[1] or tonumber(f[2]) <= tonumber(ARGV[6]) then return -1 end
if f[1] ~= ARGV[3] then return 0 end
local v = redis.call('HINCRBY', rk, 'v', 1)
redis.call('HSET', rk, 'd', ARGV[4])
if f[2] ~= ARGV[5] then
  local base, e, m = ARGV[1], tonumber(ARGV[5]), f[4] .. ARGV[2]
  redis.call('HSET', rk, 'e', ARGV[5])
  redis.call('EXPIREAT', rk, e)
  redis.call('ZADD', base .. 'exp', e, m)
  local uk = base .. 'u:' .. hex(f[3])
  redis.call('ZADD', uk, e, m)
  extend(uk, e)
end
return v
