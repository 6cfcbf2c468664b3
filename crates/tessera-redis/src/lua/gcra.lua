-- KEYS[1] the limiter key. ARGV: limit per minute (> 0), now in microseconds.
-- GCRA: the key holds the theoretical arrival time (TAT) of the next request.
-- Returns {1, 0} when allowed (and counted), {0, seconds to wait} when not.
local limit, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval = math.max(1, math.floor(60000000 / limit))
local tolerance = interval * (limit - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local earliest = tat - tolerance
if earliest > now then
  return {0, math.ceil((earliest - now) / 1000000)}
end
local next_tat = tat + interval
-- The state is worthless once the TAT has passed: let Redis forget it then.
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {1, 0}
