-- KEYS[1] a membership. ARGV: sealed, deadline. Writes it only if there is
-- none: returns 1 if written, 0 if one was there; LATE past the deadline.
if late() then return LATE end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end
return 0
