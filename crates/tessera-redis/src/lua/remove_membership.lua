-- KEYS[1] a membership. ARGV: deadline. Returns 1 if there was one; LATE
-- past the deadline.
if late() then return LATE end
return redis.call('DEL', KEYS[1])
