--[[
admit.lua: check and take one request from an API key's limits, all or nothing, atomically.

The bucket math is router/limits/bucket.py's, in the same order of operations (level_at,
try_take, time_to_full); tests/bucket_cases.py is run through both.

KEYS[1]  rpm bucket         hash {level, stamp}
KEYS[2]  tpm bucket         hash {level, stamp}
KEYS[3]  concurrency leases sorted set {lease id -> expiry}
ARGV[1]  now in seconds, or "" for the Redis server's clock (one clock for all routers)
ARGV[2]  rpm limit, or "" for none
ARGV[3]  tpm limit, or "" for none
ARGV[4]  token estimate: the tpm cost
ARGV[5]  concurrency limit, or "" for none
ARGV[6]  lease id
ARGV[7]  lease ttl in seconds
ARGV[8]  deferred settle: tokens (actual - estimate) of this key's earlier requests, or ""
ARGV[9]  n: candidate provider accounts with declared limits (0: none), in order of preference
ARGV[10 … 9+2n]  each account's rpm limit and tpm limit ("" for none)
KEYS[4 … 3+2n]   each account's rpm bucket and tpm bucket
ARGV[10+2n …]    deferred releases: lease ids of this key's finished requests

Returns strings, since Redis truncates Lua numbers to integers:
  {allowed "1" | "0", kind "" | "requests" | "tokens" | "concurrency", retry_after "" | seconds,
   rpm level, rpm seconds to full, tpm level, tpm seconds to full,
   account: the 1-based index of the account charged or "", accounts_full "1" | "",
   then per account checked: rpm level, rpm seconds to full, tpm level, tpm seconds to full}
  with "" for the level and time of a limit that is not set.

Accounts are checked only once the key's own limits pass, in order; the first with room is
charged with the key. When none has room nothing at all is taken (the router tries again
later or answers 429), and the refusal is the account wait that is shortest.
]]

-- Keeps the Redis < 5 default of replicating the script, not its effects, from replaying
-- TIME on replicas; a no-op since Redis 5.
if redis.replicate_commands then redis.replicate_commands() end

local CONCURRENCY_RETRY_AFTER = 1  -- router/limits/types.py
local MARGIN = 1  -- seconds an idle bucket outlives the moment it is full (and forgettable)

local function fmt(x) return string.format('%.17g', x) end

local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function level_at(level, stamp, capacity)
  local elapsed = math.max(0, now - stamp)
  return math.min(capacity, level + elapsed * (capacity / 60)), math.max(stamp, now)
end

-- allowed, level, stamp, retry_after (nil: allowed, or never)
local function try_take(level, stamp, capacity, cost)
  level, stamp = level_at(level, stamp, capacity)
  if cost > capacity or capacity == 0 then return false, level, stamp, nil end
  if level >= cost then return true, level - cost, stamp, nil end
  return false, level, stamp, (cost - level) / (capacity / 60)
end

local function time_to_full(level, stamp, capacity)
  local ahead = math.max(0, stamp - now)
  if capacity / 60 == 0 then return ahead end
  return ahead + math.max(0, (capacity - level) / (capacity / 60))
end

-- One bucket, refilled to now: {key, capacity, level, stamp, cost, allowed, retry}, or nil if
-- not limited. Nothing is taken yet: that waits until every limit has passed.
local function check(key, limit, cost)
  local capacity = tonumber(limit)
  if not capacity then return nil end
  local saved = redis.call('HMGET', key, 'level', 'stamp')
  local level, stamp = capacity, now
  if saved[1] then level, stamp = tonumber(saved[1]), tonumber(saved[2]) end
  local allowed, _, _, retry = try_take(level, stamp, capacity, cost)
  level, stamp = level_at(level, stamp, capacity)
  return {key = key, capacity = capacity, level = level, stamp = stamp, cost = cost,
          allowed = allowed, retry = retry}
end

local function save(key, level, stamp, capacity)
  redis.call('HSET', key, 'level', fmt(level), 'stamp', fmt(stamp))
  local idle = time_to_full(level, stamp, capacity) + MARGIN
  redis.call('PEXPIRE', key, math.ceil(idle * 1000))
end

-- Work deferred from this key's earlier requests rides along (one round trip per request
-- instead of three): settle their token charges, bucket.py's settle() (refill, subtract,
-- never above capacity, a debt allowed), and free their concurrency leases.
local delta, tpm_capacity = tonumber(ARGV[8]), tonumber(ARGV[3])
if delta and delta ~= 0 and tpm_capacity then
  local saved = redis.call('HMGET', KEYS[2], 'level', 'stamp')
  local level, stamp = tpm_capacity, now
  if saved[1] then level, stamp = tonumber(saved[1]), tonumber(saved[2]) end
  level, stamp = level_at(level, stamp, tpm_capacity)
  save(KEYS[2], math.min(tpm_capacity, level - delta), stamp, tpm_capacity)
end
local n_accounts = tonumber(ARGV[9]) or 0
local first_lease = 10 + 2 * n_accounts
if #ARGV >= first_lease then redis.call('ZREM', KEYS[3], unpack(ARGV, first_lease)) end

local rpm = check(KEYS[1], ARGV[2], 1)
local tpm = check(KEYS[2], ARGV[3], tonumber(ARGV[4]))

local refusals = {}
if rpm and not rpm.allowed then table.insert(refusals, {'requests', rpm.retry}) end
if tpm and not tpm.allowed then table.insert(refusals, {'tokens', tpm.retry}) end

local concurrency = tonumber(ARGV[5])
if concurrency then
  -- Leases of a crashed router expire instead of holding their slots forever.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
  if redis.call('ZCARD', KEYS[3]) >= concurrency then
    -- A limit of 0 never frees a slot: no wait helps (nil), as in local.py.
    local wait = nil
    if concurrency > 0 then wait = CONCURRENCY_RETRY_AFTER end
    table.insert(refusals, {'concurrency', wait})
  end
end

-- The longest wait decides (nil, never, is longest); the first wins a tie. types.worst().
local kind, retry = '', nil
local longest = -1
for _, refusal in ipairs(refusals) do
  local wait = refusal[2] or math.huge
  if wait > longest then kind, retry, longest = refusal[1], refusal[2], wait end
end

local allowed = #refusals == 0

-- The candidate accounts, once the key may go: the first with room is the one charged.
local chosen, checked, accounts_full = nil, {}, ''
if allowed and n_accounts > 0 then
  local best_wait, best_kind = nil, 'requests'
  for i = 1, n_accounts do
    local a_rpm = check(KEYS[2 + 2 * i], ARGV[8 + 2 * i], 1)
    local a_tpm = check(KEYS[3 + 2 * i], ARGV[9 + 2 * i], tonumber(ARGV[4]))
    table.insert(checked, {a_rpm, a_tpm})
    local rpm_ok = not a_rpm or a_rpm.allowed
    local tpm_ok = not a_tpm or a_tpm.allowed
    if rpm_ok and tpm_ok then chosen = i break end
    -- This account's wait: its longest refusal (nil, never, if a refusal has none).
    local wait, kind, never = 0, 'tokens', false
    if not rpm_ok then kind = 'requests' end
    for _, b in pairs({a_rpm or false, a_tpm or false}) do  -- (ipairs stops at a nil)
      if b and not b.allowed then
        if b.retry then wait = math.max(wait, b.retry) else never = true end
      end
    end
    if not never and (best_wait == nil or wait < best_wait) then best_wait, best_kind = wait, kind end
    if never and best_wait == nil then best_kind = kind end
  end
  if not chosen then
    allowed, kind, retry, accounts_full = false, best_kind, best_wait, '1'
  end
end

local function commit(b)
  if not b then return end
  b.level = b.level - b.cost  -- try_take's new level
  save(b.key, b.level, b.stamp, b.capacity)
end

if allowed then
  commit(rpm)
  commit(tpm)
  if chosen then
    commit(checked[chosen][1])
    commit(checked[chosen][2])
  end
  if concurrency then
    local ttl = tonumber(ARGV[7])
    redis.call('ZADD', KEYS[3], fmt(now + ttl), ARGV[6])
    redis.call('PEXPIRE', KEYS[3], math.ceil((ttl + MARGIN) * 1000))
  end
end

-- What is left: after the take if allowed, else as it was (refilled to now).
local function report(b)
  if not b then return '', '' end
  return fmt(b.level), fmt(time_to_full(b.level, b.stamp, b.capacity))
end

local rpm_level, rpm_reset = report(rpm)
local tpm_level, tpm_reset = report(tpm)
local reply = {allowed and '1' or '0', kind, retry and fmt(retry) or '',
               rpm_level, rpm_reset, tpm_level, tpm_reset,
               chosen and tostring(chosen) or '', accounts_full}
for _, pair in ipairs(checked) do
  for j = 1, 2 do
    local level, reset = report(pair[j])
    table.insert(reply, level)
    table.insert(reply, reset)
  end
end
return reply
