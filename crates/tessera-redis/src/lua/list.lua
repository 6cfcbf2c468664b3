-- KEYS[1] the shard's listing index. ARGV: base, now, limit, min, max, budget.
-- Walks members in (org key, id) order from min to max and returns
-- {exhausted, last member scanned, then id, version, expires_at, user key,
-- org key, sealed for each live session}. Stops after limit live sessions or
-- budget members scanned, so one call's work is bounded.
local base, now, limit, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])
local min, max = ARGV[4], ARGV[5]
local out = {0, ''}
local found, scanned = 0, 0
while true do
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], min, max, 'LIMIT', 0, 64)
  if #batch == 0 then
    out[1] = 1
    return out
  end
  for _, m in ipairs(batch) do
    scanned = scanned + 1
    out[2] = m
    local id = string.sub(m, 17)
    local f = redis.call('HMGET', base .. 'r:' .. hex(id), 'v', 'e', 'u', 'o', 'd')
    if f[1] and tonumber(f[2]) > now then
      out[#out + 1] = id
      for i = 1, 5 do out[#out + 1] = f[i] end
      found = found + 1
      if found >= limit then return out end
    end
    if scanned >= budget then return out end
  end
  min = '(' .. out[2]
end
