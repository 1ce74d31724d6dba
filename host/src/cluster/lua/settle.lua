-- settle(prefix; scope, id, sent_ms, verdict, hint_ms, estimated, used, tpm,
--        base_ms, multiplier, max_ms, slow_attempts, n, [authority,
--        remaining, reset_ms] * n)
-- The answer to an attempt: leaves the in-flight set, corrects the TPM
-- charge with the tokens used, learns the request budgets the answer's
-- headers reported (the smallest any host saw wins), and moves the scope's
-- cooldown exactly as the local gates do: a 429 for a request sent before
-- the pause began only extends it; a probe of the ramp pauses again at the
-- same level; only a full pause and ramp that did not help escalate; a
-- success sent after the pause began resets the level.
-- Returns {effect, ms}: effect 'none', 'started', 'extended' or 'absorbed'.
local p = KEYS[1]
local scope = ARGV[1]
local sent = tonumber(ARGV[3])
local verdict = ARGV[4]
local hint = tonumber(ARGV[5])
local estimated = tonumber(ARGV[6])
local used = tonumber(ARGV[7])
local tpm = tonumber(ARGV[8])
local now = now_ms()

local fl = p .. ':inflight'
redis.call('ZREM', fl, ARGV[2])
redis.call('ZREMRANGEBYSCORE', fl, '-inf', now)
local in_flight = redis.call('ZCARD', fl)

if tpm > 0 and estimated ~= used then
  local key = p .. ':tat:tok'
  local tat = num(redis.call('GET', key))
  if tat then
    local nt = tat + (used - estimated) * 60000 / tpm
    redis.call('SET', key, fmt(nt), 'PX', math.floor(math.min(math.max(nt - now, 0) + DAY, 400 * DAY)))
  end
end

local n = tonumber(ARGV[13])
for i = 0, n - 1 do
  local a = ARGV[14 + i * 3]
  local reported = tonumber(ARGV[15 + i * 3]) - math.max(in_flight, 0)
  local reset_at = now + tonumber(ARGV[16 + i * 3])
  local k = p .. ':s:' .. a
  redis.call('SADD', p .. ':scopes', a)
  local h = redis.call('HMGET', k, 'b_rem', 'b_reset')
  local rem, reset = num(h[1]), num(h[2])
  if rem and not (reset_at > reset + 50 and rem <= 0) then
    redis.call('HSET', k, 'b_rem', math.min(rem, reported), 'b_reset', fmt(math.max(reset, reset_at)))
  else
    redis.call('HSET', k, 'b_rem', reported, 'b_reset', fmt(reset_at))
  end
  redis.call('PEXPIRE', k, DAY)
end
redis.call('PEXPIRE', p .. ':scopes', DAY)

local key = p .. ':s:' .. scope
if verdict == 'ok' then
  local started = num(redis.call('HGET', key, 'started'))
  if redis.call('EXISTS', key) == 1 and (started == nil or sent >= started) then
    redis.call('HSET', key, 'unresolved', 0, 'level', 0)
  end
  return {'none', '0'}
end
if verdict ~= 'rate_limited' then return {'none', '0'} end

redis.call('SADD', p .. ':scopes', scope)
if hint < 0 then hint = 0 end
local h = redis.call('HMGET', key, 'started', 'until', 'ramp_ended', 'level', 'unresolved', 'next_slot')
local started, untl, ramp_ended = num(h[1]), num(h[2]), num(h[3])
local level, unresolved, next_slot = num(h[4]) or 0, num(h[5]) or 0, num(h[6])
if started and sent < started then
  -- Seen late: an echo of the overload that started this pause.
  local e = now + hint
  if untl and e > untl then
    redis.call('HSET', key, 'until', fmt(e))
    if next_slot then redis.call('HSET', key, 'next_slot', fmt(math.max(next_slot, e))) end
    return {'extended', ms(e - now)}
  end
  return {'absorbed', '0'}
end
local slow = tonumber(ARGV[12])
local ramp_end = ramp_ended
if slow == 0 then ramp_end = untl end
local in_ramp = started ~= nil and (ramp_end == nil or sent < ramp_end)
local lvl
if unresolved == 0 then lvl = 0 elseif in_ramp then lvl = level else lvl = level + 1 end
local base, mult, cap = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local pause = math.min(base * mult ^ math.min(lvl, 64), math.max(cap, base))
pause = math.max(pause, hint)
redis.call('HSET', key, 'started', fmt(now), 'until', fmt(now + pause), 'level', lvl,
           'unresolved', unresolved + 1, 'admitted', 0)
redis.call('HDEL', key, 'ramp_ended', 'next_slot')
redis.call('PEXPIRE', key, DAY + math.floor(math.min(pause, 400 * DAY)))
return {'started', ms(pause)}
