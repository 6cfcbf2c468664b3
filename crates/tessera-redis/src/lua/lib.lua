-- Shared by every shard script (prepended to each). All keys a script
-- touches share the hash tag in `base` (ARGV[1], "<prefix>{<tag>}:"), so in
-- a cluster they live in the slot of the script's KEYS[1].

local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- Every write script takes the caller's deadline, in Unix milliseconds, as
-- its last ARGV, and starts with `if late() then return LATE end`. A write
-- that runs past its deadline (queued behind CLIENT PAUSE, a stopped or
-- busy server) changes nothing and answers with this error instead: its
-- caller has given up, or is about to, and reports the write failed, so it
-- must not take effect behind the caller's back. The deadline is read
-- against the server's clock, the one that decides when the script runs.
local LATE = {err = 'LATE the write ran past its deadline; nothing was written'}

local function late()
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return ms > tonumber(ARGV[#ARGV])
end

-- Unix seconds by the server's clock: used only to prune index entries whose
-- records a TTL has already dropped, never to decide what a caller sees.
local function server_now()
  return tonumber(redis.call('TIME')[1])
end

local function unorg(base, o)
  if redis.call('HINCRBY', base .. 'orgs', o, -1) <= 0 then
    redis.call('HDEL', base .. 'orgs', o)
  end
end

-- Drops the shard-index entries of member m (org key .. id). Idempotent: the
-- org count only moves when the expiry entry was still there.
local function unindex(base, m)
  if redis.call('ZREM', base .. 'exp', m) == 1 then
    redis.call('ZREM', base .. 'ids', m)
    unorg(base, string.sub(m, 1, 16))
  end
end

-- Removes a session's record and every index entry; returns its expires_at,
-- or nil if there was no record.
local function drop(base, id)
  local rk = base .. 'r:' .. hex(id)
  local f = redis.call('HMGET', rk, 'e', 'u', 'o')
  if not f[1] then return nil end
  local m = f[3] .. id
  redis.call('DEL', rk)
  redis.call('ZREM', base .. 'u:' .. hex(f[2]), m)
  unindex(base, m)
  return tonumber(f[1])
end

-- A user index lives as long as its longest session.
local function extend(key, e)
  redis.call('EXPIREAT', key, e, 'NX')
  redis.call('EXPIREAT', key, e, 'GT')
end

