-- Finishes a reservation once: frees what it holds, charges what was spent, and leaves a "done"
-- marker so a second settle or release (a retry, a late duplicate) changes nothing.
--
-- KEYS[1] reservation record, KEYS[2] the team's counter index, then per counter: calendar ->
-- hash, holds; rate -> arrival time.
-- ARGV[1] now µs, [2] reservation id, [3] done-marker TTL ms, [4] counter count, then one per
-- counter, its fields joined by \30: kind (w|g), amount spent (calendar), correction (rate: spent minus reserved), TTL ms
-- for a counter this creates (0: never expires), emission µs per unit (rate), index member for a
-- counter the reservation did not hold ('' otherwise).
-- Returns 1 if this call finished the reservation, 0 if it was already finished.
if redis.call('HGET', KEYS[1], '_') == 'done' then
  return 0
end
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local k = 3
for i = 1, tonumber(ARGV[4]) do
  local spec = split(ARGV[4 + i])
  if spec[1] == 'w' then
    purge(KEYS[k], KEYS[k + 1], ARGV[1])
    local held = redis.call('HGET', KEYS[k], 'a:' .. rid)
    if held then
      redis.call('HDEL', KEYS[k], 'a:' .. rid)
      redis.call('HINCRBY', KEYS[k], 'r', -tonumber(held))
      redis.call('ZREM', KEYS[k + 1], rid)
    end
    local spent = tonumber(spec[2])
    if spent > 0 then
      redis.call('HINCRBY', KEYS[k], 'u', spent)
      local ttl = tonumber(spec[4])
      if ttl > 0 and redis.call('PTTL', KEYS[k]) == -1 then
        redis.call('PEXPIRE', KEYS[k], ttl)
      end
    end
    k = k + 2
  else
    local correction = tonumber(spec[3])
    if correction ~= 0 then
      local tat = math.max(tonumber(redis.call('GET', KEYS[k]) or '0'), now)
        + correction * tonumber(spec[5])
      if tat <= now then
        redis.call('DEL', KEYS[k])
      else
        store_tat(KEYS[k], tat, now)
      end
    end
    k = k + 1
  end
  if spec[6] ~= '' then
    redis.call('ZADD', KEYS[2], now, spec[6])
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_', 'done')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
