--[[
settle.lua: correct an API key's token charge with the real usage, atomically.

bucket.py's settle(): refill to now, subtract delta (a negative delta refunds); the level may
go below zero (a debt later requests wait out), never above capacity.

KEYS[1]  tpm bucket hash {level, stamp}
ARGV[1]  now in seconds, or "" for the Redis server's clock
ARGV[2]  tpm limit
ARGV[3]  delta: actual tokens - estimate

Returns the new level as a string.
]]

if redis.replicate_commands then redis.replicate_commands() end

local MARGIN = 1

local function fmt(x) return string.format('%.17g', x) end

local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local capacity = tonumber(ARGV[2])
local delta = tonumber(ARGV[3])
local saved = redis.call('HMGET', KEYS[1], 'level', 'stamp')
local level, stamp = capacity, now
if saved[1] then level, stamp = tonumber(saved[1]), tonumber(saved[2]) end

-- level_at, then the charge
level = math.min(capacity, level + math.max(0, now - stamp) * (capacity / 60))
stamp = math.max(stamp, now)
level = math.min(capacity, level - delta)

-- time_to_full + MARGIN, as in admit.lua
local idle = math.max(0, stamp - now) + MARGIN
if capacity / 60 ~= 0 then idle = idle + math.max(0, (capacity - level) / (capacity / 60)) end

redis.call('HSET', KEYS[1], 'level', fmt(level), 'stamp', fmt(stamp))
redis.call('PEXPIRE', KEYS[1], math.ceil(idle * 1000))
return fmt(level)
