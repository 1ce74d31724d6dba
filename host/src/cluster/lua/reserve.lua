-- reserve(prefix; scope, tokens, rpm, tpm, burst_secs, slow_attempts,
--         slow_spacing_ms, horizon_ms, inflight_ttl_ms)
-- One decision for every host: the scope's cooldown (and its slow-start
-- ramp) and learned budget must be open now; then the RPM and TPM buckets
-- (GCRA: one "theoretical arrival time" per bucket) give the earliest send
-- time, which is booked at once so the next caller queues behind it.
-- Returns {'granted', delay_ms, id, send_ms}, {'closed', wait_ms} (a pause or
-- a used-up budget) or {'later', wait_ms} (the slot is beyond the horizon).
local p = KEYS[1]
local scope = ARGV[1]
local tokens = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local burst = tonumber(ARGV[5])
local slow = tonumber(ARGV[6])
local spacing = tonumber(ARGV[7])
local horizon = tonumber(ARGV[8])
local ttl = tonumber(ARGV[9])
local now = now_ms()

local scopes
if scope == '' then scopes = redis.call('SMEMBERS', p .. ':scopes') else scopes = {scope} end
local states = {}
local wait = 0
for _, s in ipairs(scopes) do
  local k = p .. ':s:' .. s
  local h = redis.call('HMGET', k, 'until', 'next_slot', 'ramp_ended', 'admitted', 'b_rem', 'b_reset')
  local st = {k = k, untl = num(h[1]), next_slot = num(h[2]), ramp_ended = num(h[3]),
              admitted = num(h[4]) or 0, b_rem = num(h[5]), b_reset = num(h[6])}
  if st.untl then
    wait = math.max(wait, math.max(st.next_slot or st.untl, st.untl) - now)
  end
  if st.b_rem and st.b_rem <= 0 and st.b_reset > now then
    wait = math.max(wait, st.b_reset - now)
  end
  states[#states + 1] = st
end
if wait > 0 then return {'closed', ms(wait)} end

-- GCRA: a bucket of `cap` units refilled at `per_min`; a cost above the
-- bucket is admitted alone on a full bucket and leaves a debt.
local function slot(key, per_min, cost)
  local T = 60000 / per_min
  local cap = math.max(1, per_min / 60 * burst)
  local tat = num(redis.call('GET', key)) or now
  local need = math.min(cost, cap)
  return math.max(now, tat - (cap - need) * T), tat, T
end
local send = now
local rq_at, rq_tat, rq_T, tk_at, tk_tat, tk_T
if rpm > 0 then
  rq_at, rq_tat, rq_T = slot(p .. ':tat:req', rpm, 1)
  send = math.max(send, rq_at)
end
if tpm > 0 then
  tk_at, tk_tat, tk_T = slot(p .. ':tat:tok', tpm, tokens)
  send = math.max(send, tk_at)
end
if send - now > horizon then return {'later', ms(send - now - horizon)} end

local function keep(key, tat)
  redis.call('SET', key, fmt(tat), 'PX', math.floor(math.min(math.max(tat - now, 0) + DAY, 400 * DAY)))
end
if rpm > 0 then keep(p .. ':tat:req', math.max(rq_tat, send) + rq_T) end
if tpm > 0 then keep(p .. ':tat:tok', math.max(tk_tat, send) + tokens * tk_T) end

-- The slow-start ramp after a pause, and the learned budget, at the slot.
for _, st in ipairs(states) do
  if st.untl and not st.ramp_ended and send >= st.untl then
    if slow == 0 or st.admitted >= slow then
      redis.call('HSET', st.k, 'ramp_ended', fmt(send))
    else
      local left = (slow - st.admitted) / slow
      local at = math.max(st.next_slot or st.untl, st.untl, send)
      local nxt = at + spacing * left
      local admitted = st.admitted + 1
      redis.call('HSET', st.k, 'next_slot', fmt(nxt), 'admitted', admitted)
      if admitted >= slow then redis.call('HSET', st.k, 'ramp_ended', fmt(nxt)) end
    end
  end
  if st.b_rem and st.b_reset > now then
    redis.call('HSET', st.k, 'b_rem', st.b_rem - 1)
  end
end

local id = redis.call('INCR', p .. ':seq')
redis.call('ZADD', p .. ':inflight', send + ttl, id)
redis.call('PEXPIRE', p .. ':inflight', DAY)
redis.call('PEXPIRE', p .. ':seq', 30 * DAY)
return {'granted', ms(send - now), tostring(id), fmt(send)}
