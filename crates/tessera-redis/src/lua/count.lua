-- KEYS[1] the shard's expiry index. ARGV: base, now.
-- Returns the live total, then org key, live count pairs (zeros omitted).
-- Per-org counters include sessions that expired but are not purged yet;
-- those are subtracted, at a cost proportional to that backlog, which
-- purge keeps small.
local base, now = ARGV[1], ARGV[2]
local out = {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')}
local flat = redis.call('HGETALL', base .. 'orgs')
local counts = {}
for i = 1, #flat, 2 do counts[flat[i]] = tonumber(flat[i + 1]) end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local o = string.sub(m, 1, 16)
  if counts[o] then counts[o] = counts[o] - 1 end
end
for o, c in pairs(counts) do
  if c > 0 then
    out[#out + 1] = o
    out[#out + 1] = c
  end
end
return out
