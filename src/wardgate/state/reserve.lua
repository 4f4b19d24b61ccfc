-- Checks every counter of one request and, only if all pass, holds the amounts under one
-- reservation id. All keys carry the team's {hash tag}, so this runs on Redis Cluster.
--
-- KEYS[1] reservation record (hash: _ = open|done, <counter id> = entry), KEYS[2] the team's
-- counter index (sorted set, for the admin snapshot), then per counter: calendar -> hash, holds;
-- rate -> the bucket's theoretical arrival time (GCRA).
-- ARGV[1] now µs, [2] expiry µs, [3] reservation id, [4] record TTL ms, [5] index cutoff µs,
-- [6] index TTL ms, [7] counter count, then one per counter, its fields joined by \30: kind (w|g),
-- amount, cap (limit, or burst for a rate), key TTL ms (0: never), emission µs per unit (rate),
-- counter id, record entry, index member ('' when the caller indexed it lately).
-- Returns {-1} if the id exists, else {refused position (0 = admitted), wait µs, then per counter
-- used and reserved (calendar) or theoretical arrival time and 0 (rate)}.
local now = tonumber(ARGV[1])
local rid = ARGV[3]
local n = tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {-1}
end

local refused, wait = 0, 0
local seen, spec = {}, {}
local indexed = false
local k = 3
for i = 1, n do
  spec[i] = split(ARGV[7 + i])
  local kind, amount, cap = spec[i][1], tonumber(spec[i][2]), tonumber(spec[i][3])
  if kind == 'w' then
    purge(KEYS[k], KEYS[k + 1], ARGV[1])
    local held = redis.call('HMGET', KEYS[k], 'u', 'r')
    local used = tonumber(held[1] or '0')
    local reserved = tonumber(held[2] or '0')
    if refused == 0 and used + reserved + amount > cap then
      refused = i
    end
    seen[i] = {used, reserved}
    k = k + 2
  else
    local step = tonumber(spec[i][5])
    local tat = math.max(tonumber(redis.call('GET', KEYS[k]) or '0'), now)
    local allow_at = tat + amount * step - cap * step
    if refused == 0 and allow_at > now then
      refused = i
      wait = allow_at - now
    end
    seen[i] = {tat, 0}
    k = k + 1
  end
  if spec[i][8] ~= '' then
    redis.call('ZADD', KEYS[2], now, spec[i][8])
    indexed = true
  end
end
if indexed then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end

if refused == 0 then
  local fields = {'_', 'open'}
  k = 3
  for i = 1, n do
    local amount = tonumber(spec[i][2])
    if spec[i][1] == 'w' then
      redis.call('HINCRBY', KEYS[k], 'r', amount)
      redis.call('HSET', KEYS[k], 'a:' .. rid, amount)
      redis.call('ZADD', KEYS[k + 1], ARGV[2], rid)
      local ttl = tonumber(spec[i][4])
      if ttl > 0 then
        extend(KEYS[k], ttl)
        extend(KEYS[k + 1], ttl)
      end
      seen[i][2] = seen[i][2] + amount
      k = k + 2
    else
      seen[i][1] = store_tat(KEYS[k], seen[i][1] + amount * tonumber(spec[i][5]), now)
      k = k + 1
    end
    fields[#fields + 1] = spec[i][6]
    fields[#fields + 1] = spec[i][7]
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end

local out = {refused, math.floor(wait)}
for i = 1, n do
  out[#out + 1] = math.floor(seen[i][1])
  out[#out + 1] = seen[i][2]
end
return out
