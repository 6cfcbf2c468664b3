-- KEYS[1] record. ARGV: base, id, deadline. Returns 1 if a live session was
-- removed; LATE past the deadline.
if late() then return LATE end
local e = drop(ARGV[1], ARGV[2])
if e and e > server_now() then return 1 end
return 0
