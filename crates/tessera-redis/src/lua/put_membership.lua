-- KEYS[1] a membership. ARGV: sealed, deadline. LATE past the deadline.
if late() then return LATE end
redis.call('SET', KEYS[1], ARGV[1])
return 1
