-- One event in a sliding window: drops events at or before now - window, adds this one, counts.
-- KEYS[1] the key's sorted set (score: event time µs). ARGV[1] now µs, [2] cutoff µs,
-- [3] unique member, [4] TTL ms.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
extend(KEYS[1], tonumber(ARGV[4]))
return redis.call('ZCARD', KEYS[1])
