-- KEYS[1] record. ARGV: base, id, user key, org key, expires_at, sealed, now,
-- deadline. Returns 1 if inserted, 0 if a live session has that id; LATE
-- past the deadline.
if late() then return LATE end
local base, id, u, o, d = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6]
local e, now = tonumber(ARGV[5]), tonumber(ARGV[7])
local rk = KEYS[1]
local old = redis.call('HGET', rk, 'e')
if old then
  if tonumber(old) > now then return 0 end
  drop(base, id)
end
-- Dead already by the server's clock: its TTL would drop the record at once
-- and leave index entries behind, so store nothing.
if e <= server_now() then return 1 end
local m = o .. id
redis.call('HSET', rk, 'v', 1, 'e', ARGV[5], 'u', u, 'o', o, 'd', d)
redis.call('EXPIREAT', rk, e)
redis.call('ZADD', base .. 'exp', e, m)
redis.call('ZADD', base .. 'ids', 0, m)
redis.call('HINCRBY', base .. 'orgs', o, 1)
local uk = base .. 'u:' .. hex(u)
redis.call('ZADD', uk, e, m)
extend(uk, e)
return 1
