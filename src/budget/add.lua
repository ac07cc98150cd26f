-- Adds to one windowed counter and returns its total, atomically.
-- KEYS[1]: the counter, a hash with one field per bucket number.
-- ARGV: amount (0 = only read), current bucket, buckets summed, time to live in ms.
local amount = tonumber(ARGV[1])
local current = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if amount > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[2], amount)
  -- Idle for a window and one bucket, every bucket is stale: drop the key.
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
local stale = {}
for i = 1, #fields, 2 do
  local bucket = tonumber(fields[i])
  if bucket <= current - slots then
    stale[#stale + 1] = fields[i]
  elseif bucket <= current then
    total = total + tonumber(fields[i + 1])
  end
end
if amount > 0 and #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
end
return total
