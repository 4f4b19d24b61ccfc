-- Reads counters for the admin snapshot (freeing expired reservations on the way).
-- KEYS per counter: calendar -> hash, holds; rate -> arrival time. ARGV[1] now µs, [2] count,
-- then one kind (w|g) per counter. Returns per counter used and reserved, or arrival time and 0.
local out = {}
local k = 1
for i = 1, tonumber(ARGV[2]) do
  if ARGV[2 + i] == 'w' then
    purge(KEYS[k], KEYS[k + 1], ARGV[1])
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[k], 'u') or '0')
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[k], 'r') or '0')
    k = k + 2
  else
    out[#out + 1] = tonumber(redis.call('GET', KEYS[k]) or '0')
    out[#out + 1] = 0
    k = k + 1
  end
end
return out
