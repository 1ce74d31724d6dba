-- claim(prefix; consumer, lease_ms)
-- The next chunk for this host: one whose owner stopped renewing it for a
-- whole lease (XAUTOCLAIM: takeover), else a new one (XREADGROUP). The
-- claim gets a new epoch; every later write of an older epoch is refused,
-- so a paused owner that wakes up cannot start or commit anything. The
-- chunk's journal comes back with it: ids some owner sent and may not have
-- recorded. Returns {'claimed', chunk, epoch, entry, range, [id, epoch]...}
-- or {'none', done, chunks}.
local p = KEYS[1]
local consumer = ARGV[1]
local q = p .. ':queue'
local meta = redis.call('HMGET', p .. ':meta', 'chunks')
if not meta[1] or tonumber(meta[1]) == 0 then return {'none', '0', '0'} end
-- A dead host's chunk first: its items have waited longest.
local entry
local a = redis.call('XAUTOCLAIM', q, 'hosts', consumer, ARGV[2], '0-0', 'COUNT', 1)
if a[2] and #a[2] > 0 then entry = a[2][1] end
if not entry then
  local r = redis.call('XREADGROUP', 'GROUP', 'hosts', consumer, 'COUNT', 1, 'STREAMS', q, '>')
  if r and r[1] and #r[1][2] > 0 then entry = r[1][2][1] end
end
if not entry then
  return {'none', tostring(redis.call('SCARD', p .. ':done')), meta[1]}
end
local id = entry[1]
local c = entry[2][2]
if redis.call('SISMEMBER', p .. ':done', c) == 1 then
  redis.call('XACK', q, 'hosts', id)
  return {'again'}
end
local epoch = redis.call('HINCRBY', p .. ':epoch', c, 1)
redis.call('HSET', p .. ':owner', c, consumer)
local out = {'claimed', c, tostring(epoch), id, redis.call('HGET', p .. ':chunks', c)}
local j = redis.call('HGETALL', p .. ':journal:' .. c)
for _, v in ipairs(j) do out[#out + 1] = v end
return out
