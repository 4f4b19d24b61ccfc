-- One event in each of several sliding windows: per key, drops events at or before now - window,
-- adds this one, counts. KEYS: the keys' sorted sets (score: event time µs). ARGV[1] now µs,
-- [2] cutoff µs, [3] unique member, [4] TTL ms. Returns the counts, in KEYS order.
local counts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
  redis.call('ZADD', key, ARGV[1], ARGV[3])
  -- Every hit moves the key's expiry to now + window (+1 s): one PEXPIRE, no PTTL to compare first
  -- (the window is the policy's, the same on every call for a key).
  redis.call('PEXPIRE', key, ARGV[4])
  counts[i] = redis.call('ZCARD', key)
end
return counts
