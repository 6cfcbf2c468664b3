-- KEYS[1] record. ARGV: base, id. Returns 1 if a live session was removed.
local e = drop(ARGV[1], ARGV[2])
if e and e > server_now() then return 1 end
return 0
