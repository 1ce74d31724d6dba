-- commit(prefix; chunk, epoch, entry): the chunk's records are durable in
-- its part file of this epoch; only the holder of the current epoch may
-- commit. Returns {'ok', done, chunks} or {'fenced'}.
local p = KEYS[1]
local c, e, entry = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', p .. ':epoch', c) ~= e then return {'fenced'} end
redis.call('SADD', p .. ':done', c)
redis.call('HSET', p .. ':committed', c, e)
redis.call('XACK', p .. ':queue', 'hosts', entry)
redis.call('DEL', p .. ':journal:' .. c)
return {'ok', tostring(redis.call('SCARD', p .. ':done')), redis.call('HGET', p .. ':meta', 'chunks')}
