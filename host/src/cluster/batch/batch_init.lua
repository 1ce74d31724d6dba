-- init(prefix; chunk_lines, jobs, n, [start, end, first_line] * n)
-- Creates the batch once: one stream entry per chunk, the consumer group,
-- the chunks' byte ranges. Every host calls it; the first one creates, the
-- others find it (the same file gives the same chunks). Returns
-- {'created'|'exists', chunks, chunk_lines}.
local p = KEYS[1]
local meta = p .. ':meta'
if redis.call('EXISTS', meta) == 1 then
  local m = redis.call('HMGET', meta, 'chunks', 'chunk_lines')
  return {'exists', m[1], m[2]}
end
local n = tonumber(ARGV[3])
local q = p .. ':queue'
for i = 0, n - 1 do
  local b = 4 + i * 3
  redis.call('HSET', p .. ':chunks', i, ARGV[b] .. ':' .. ARGV[b + 1] .. ':' .. ARGV[b + 2])
  redis.call('XADD', q, '*', 'c', i)
end
if n > 0 then redis.call('XGROUP', 'CREATE', q, 'hosts', '0') end
redis.call('HSET', meta, 'chunks', n, 'chunk_lines', ARGV[1], 'jobs', ARGV[2])
return {'created', tostring(n), ARGV[1]}
