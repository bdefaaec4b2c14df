--[[
renew.lua: extend one open concurrency lease (a long realtime session keeps its slot).

KEYS[1]  concurrency leases sorted set {lease id -> expiry}
ARGV[1]  now in seconds, or "" for the Redis server's clock (as admit.lua)
ARGV[2]  lease ttl in seconds
ARGV[3]  lease id

Returns 1 if the lease was open and now expires at now + ttl, 0 if it was not there (released,
or already expired and pruned): a lease is never created here, only admission takes one.
]]

if redis.replicate_commands then redis.replicate_commands() end

local MARGIN = 1  -- as admit.lua

local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local ttl = tonumber(ARGV[2])
local changed = redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%.17g', now + ttl), ARGV[3])
if changed == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil((ttl + MARGIN) * 1000))
end
return changed
