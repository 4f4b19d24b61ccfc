-- Prelude of every script (prepended when the scripts are loaded).

-- Splits one counter's argument: its fields are joined by \30 (ASCII record separator), one
-- argument per counter, because redis-py spends more time packing many small arguments than Redis
-- spends running the script.
local function split(text)
  local out, from = {}, 1
  while true do
    local at = string.find(text, '\30', from, true)
    if not at then
      out[#out + 1] = string.sub(text, from)
      return out
    end
    out[#out + 1] = string.sub(text, from, at - 1)
    from = at + 1
  end
end

-- A calendar counter is two keys: a hash (u = used, r = sum of held reservations, a:<id> = each
-- reservation's amount) and a sorted set of reservation ids scored by expiry (µs). Expired
-- reservations are freed lazily here, so a reservation lost with a crashed replica frees itself.
local function purge(counter, holds, now)
  local gone = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  for _, rid in ipairs(gone) do
    local amount = redis.call('HGET', counter, 'a:' .. rid)
    if amount then
      redis.call('HDEL', counter, 'a:' .. rid)
      redis.call('HINCRBY', counter, 'r', -tonumber(amount))
    end
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  end
end

-- Extends a key's TTL, never shortens it (PEXPIRE GT skips keys without a TTL, so compare by hand).
local function extend(key, ttl_ms)
  local current = redis.call('PTTL', key)
  if current == -1 or current < ttl_ms then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end

-- Stores a bucket's theoretical arrival time in whole µs; returns the value stored.
local function store_tat(key, tat, now)
  local whole = string.format('%.0f', tat)
  redis.call('SET', key, whole, 'PX', math.ceil((tat - now) / 1000) + 1000)
  return tonumber(whole)
end
