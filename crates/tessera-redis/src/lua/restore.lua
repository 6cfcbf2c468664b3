-- KEYS[1] record. ARGV: base, id, user key, org key, expires_at, sealed, now,
-- version, deadline. Writes the session with the version it carries, unless
-- a live one (by the caller's now) has the same or a higher version.
-- Returns 1 if written, 0 if the live one was kept, -1 if the session is
-- already dead by the server's clock (nothing written); LATE past the
-- deadline.
if late() then return LATE end
local base, id, u, o, d = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6]
local e, now, v = tonumber(ARGV[5]), tonumber(ARGV[7]), ARGV[8]
local rk = KEYS[1]
-- Versions are decimal strings without leading zeros, so comparing lengths,
-- then the strings, is exact where tonumber would round past 2^53.
local function at_least(a, b)
  return #a > #b or (#a == #b and a >= b)
end
local old = redis.call('HMGET', rk, 'v', 'e')
if old[1] and tonumber(old[2]) > now and at_least(old[1], v) then return 0 end
-- As in insert: a TTL in the past would drop the record at once and leave
-- index entries behind. The old record, if any, stays as it was.
if e <= server_now() then return -1 end
drop(base, id)
local m = o .. id
redis.call('HSET', rk, 'v', v, 'e', ARGV[5], 'u', u, 'o', o, 'd', d)
redis.call('EXPIREAT', rk, e)
redis.call('ZADD', base .. 'exp', e, m)
redis.call('ZADD', base .. 'ids', 0, m)
redis.call('HINCRBY', base .. 'orgs', o, 1)
local uk = base .. 'u:' .. hex(u)
redis.call('ZADD', uk, e, m)
extend(uk, e)
return 1
