-- Write key records unless the store holds a newer copy: the rule of `newest` in
-- router/auth/records.py (revoked first, then version, then updated_at), atomically per call,
-- so a restore, an import and an admin's write never interleave within a record.
--
-- KEYS[1] the ids set, KEYS[2] the last-used sorted set, KEYS[2 + i] the record key of record i.
-- ARGV[1] the change channel; ARGV[2] '1' if a tie writes (a put), '0' if it keeps the stored
-- copy (a merge); then 6 values per record: id, json, revoked (1 or 0), version, updated_at,
-- last_used ('' for none). Returns how many records were written.

local function rank(raw)
  local ok, record = pcall(cjson.decode, raw)
  if not ok or type(record) ~= 'table' then
    return nil  -- unreadable: any readable copy replaces it
  end
  local version = record.version
  if type(version) ~= 'number' then version = 0 end
  local updated = record.updated_at
  if type(updated) ~= 'number' then updated = record.created_at end
  if type(updated) ~= 'number' then updated = 0 end
  return {record.state == 'revoked' and 1 or 0, version, updated}
end

local function wins(incoming, stored, tie)
  if stored == nil then return true end
  for i = 1, 3 do
    if incoming[i] ~= stored[i] then return incoming[i] > stored[i] end
  end
  return tie
end

local tie = ARGV[2] == '1'
local written = 0
for i = 1, #KEYS - 2 do
  local base = 2 + (i - 1) * 6
  local id, json = ARGV[base + 1], ARGV[base + 2]
  local incoming = {tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])}
  local stored = redis.call('GET', KEYS[2 + i])  -- false when there is none
  if wins(incoming, stored and rank(stored) or nil, tie) then
    redis.call('SET', KEYS[2 + i], json)
    redis.call('SADD', KEYS[1], id)
    if ARGV[base + 6] ~= '' then
      redis.call('ZADD', KEYS[2], 'GT', ARGV[base + 6], id)
    end
    redis.call('PUBLISH', ARGV[1], id)
    written = written + 1
  end
end
return written
