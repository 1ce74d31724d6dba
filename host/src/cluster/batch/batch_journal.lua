-- journal(prefix; op, chunk, epoch, id): op 'start' notes that id is about
-- to be sent, 'settle' that it got a definite answer; both only while the
-- chunk is still held at this epoch. Returns 'ok' or 'fenced'.
local p = KEYS[1]
local c, e, id = ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', p .. ':epoch', c) ~= e then return 'fenced' end
local j = p .. ':journal:' .. c
if ARGV[1] == 'start' then
  redis.call('HSET', j, id, e)
else
  redis.call('HDEL', j, id)
end
return 'ok'
