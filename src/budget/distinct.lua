-- Adds subjects a user saw to their distinct-subject window, atomically.
-- KEYS[1]: sorted set, member = "subject:key", score = last seen (ms).
-- KEYS[2]: set while an alert for the current excess stands.
-- ARGV: now (ms), window (ms), threshold, then the members.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) <= threshold then
  redis.call('DEL', KEYS[2])
end
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], now, ARGV[i])
end
-- Exact up to threshold + 1, which is all an alert needs: keep the most
-- recently seen, so memory stays bounded by the threshold.
local count = redis.call('ZCARD', KEYS[1])
if count > threshold + 1 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - threshold - 2)
  count = threshold + 1
end
redis.call('PEXPIRE', KEYS[1], window)
local crossed = 0
if count > threshold and redis.call('SET', KEYS[2], '1', 'NX', 'PX', window) then
  crossed = 1
end
return {count, crossed}
