-- confirm(prefix; scope, id): at a reserved slot that had to wait, whether a
-- pause began meanwhile. Returns {'ok'} or {'void', wait_ms} (the slot and
-- its in-flight entry are given up).
local p = KEYS[1]
local scope = ARGV[1]
local now = now_ms()
local scopes
if scope == '' then scopes = redis.call('SMEMBERS', p .. ':scopes') else scopes = {scope} end
local wait = 0
for _, s in ipairs(scopes) do
  local untl = num(redis.call('HGET', p .. ':s:' .. s, 'until'))
  if untl and untl > now then wait = math.max(wait, untl - now) end
end
if wait > 0 then
  redis.call('ZREM', p .. ':inflight', ARGV[2])
  return {'void', ms(wait)}
end
return {'ok'}
