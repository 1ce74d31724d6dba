-- renew(prefix; consumer, [chunk, epoch, entry] * n): the heartbeat. Each
-- chunk still held at its epoch has its lease restarted (XCLAIM to itself
-- resets the idle time XAUTOCLAIM compares with the lease); returns the
-- chunks that were taken over meanwhile.
local p = KEYS[1]
local consumer = ARGV[1]
local lost = {}
local i = 2
while i + 2 <= #ARGV do
  local c, e, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HGET', p .. ':epoch', c) == e then
    redis.call('XCLAIM', p .. ':queue', 'hosts', consumer, 0, entry, 'JUSTID')
  else
    lost[#lost + 1] = c
  end
  i = i + 3
end
return lost
