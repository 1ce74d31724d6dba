-- tick(op...): everything one host asks of Redis at this moment, as one
-- atomic step on one clock. Each op is `code, nargs, args...`; the host
-- merges what can be merged (the reservations of one scope, the answers
-- that were not 429s, the journal entries of one claim), so a tick of a
-- hundred requests is a handful of ops:
--   F prefix host count ttl_ms    this host's attempts in flight
--   H prefix rpm tpm burst_secs slow_attempts slow_spacing_ms horizon_ms
--     base_ms multiplier max_ms   a limiter's settings, for the ops after
--     it that name it by its number (1, 2, ... in order of the H ops)
--   S head scope n_ok latest_ok_sent_ms token_delta n [authority remaining
--     reset_ms]*n                 answers that were not 429s
--   X head scope sent_ms hint_ms estimated used n [authority remaining
--     reset_ms]*n                 a 429
--   C head scope                  confirm a reserved slot
--   R head scope k tokens*k       k reservations in turn
--   J prefix op chunk epoch k id*k  the batch's in-flight journal
-- The reply has one string per op, in order, and then the server's clock
-- as the tick read it (the host maps slots to its own clock with it). In-
-- flight counts and settings run first, then the answers (a 429 closes the
-- scope for the reserves of this same tick), then the rest in arrival
-- order.
--
-- State is read once per tick and written back once at its end (scope
-- hashes, bucket times, the scopes set, journal hashes). The rules are the
-- local gates' (`run::gate`), line for line.
local now = now_ms()

-- Hashes read once, written back at the end.
local hashes = {}
local function hash(k)
  local h = hashes[k]
  if not h then
    local flat = redis.call('HGETALL', k)
    local f = {}
    for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
    h = {f = f, dirty = {}, exists = #flat > 0}
    hashes[k] = h
  end
  return h
end
local function hnum(h, field)
  return num(h.f[field])
end
local function hput(h, field, value)
  if type(value) == 'number' then value = fmt(value) end
  h.f[field] = value
  h.dirty[field] = true
  h.exists = true
end
local function hdel(h, field)
  if h.f[field] then
    h.f[field] = false
    h.dirty[field] = true
  end
end
local function hexpire(h, px)
  h.px = math.floor(px)
end

-- Sets of known scopes, read once.
local sets = {}
local function members(k)
  local s = sets[k]
  if not s then
    s = {list = redis.call('SMEMBERS', k), has = {}, added = {}}
    for _, m in ipairs(s.list) do s.has[m] = true end
    sets[k] = s
  end
  return s
end
local function sadd(k, m)
  local s = members(k)
  if not s.has[m] then
    s.has[m] = true
    s.list[#s.list + 1] = m
    s.added[#s.added + 1] = m
  end
  s.touched = true
end

-- Bucket times ("theoretical arrival time" of GCRA), read once.
local tats = {}
local function tat_of(k)
  local t = tats[k]
  if not t then
    t = {v = num(redis.call('GET', k))}
    tats[k] = t
  end
  return t
end
local function tat_put(k, v)
  local t = tat_of(k)
  t.v = v
  t.dirty = true
end

-- The attempts every host has in flight (each host's count expires when
-- it stops reporting it: a dead host's attempts stop counting).
local flights = {}
local function in_flight(p)
  local n = flights[p]
  if not n then
    n = 0
    local flat = redis.call('HGETALL', p .. ':inflight')
    for i = 2, #flat, 2 do
      local count, expires = string.match(flat[i], '^(%d+):([%d.]+)$')
      if count and tonumber(expires) > now then n = n + tonumber(count) end
    end
    flights[p] = n
  end
  return n
end

local function scopes_of(p, scope)
  if scope == '' then return members(p .. ':scopes').list end
  return {scope}
end

local function flight(a)
  local p, host, count, ttl = a[1], a[2], tonumber(a[3]), tonumber(a[4])
  if count > 0 then
    redis.call('HSET', p .. ':inflight', host, string.format('%d:%s', count, fmt(now + ttl)))
    redis.call('PEXPIRE', p .. ':inflight', DAY)
  else
    redis.call('HDEL', p .. ':inflight', host)
  end
  flights[p] = nil
  return ''
end

local heads = {}

-- The budgets an answer's headers reported (the smallest any host saw
-- wins), from `a[i]` on: n, then n triples.
local function learn(p, a, i)
  local n = tonumber(a[i])
  for b = 0, n - 1 do
    local auth = a[i + 1 + b * 3]
    local reported = tonumber(a[i + 2 + b * 3]) - math.max(in_flight(p), 0)
    local reset_at = now + tonumber(a[i + 3 + b * 3])
    sadd(p .. ':scopes', auth)
    local h = hash(p .. ':s:' .. auth)
    local rem, reset = hnum(h, 'b_rem'), hnum(h, 'b_reset')
    if rem and not (reset_at > reset + 50 and rem <= 0) then
      hput(h, 'b_rem', string.format('%d', math.min(rem, reported)))
      hput(h, 'b_reset', math.max(reset, reset_at))
    else
      hput(h, 'b_rem', string.format('%d', reported))
      hput(h, 'b_reset', reset_at)
    end
    hexpire(h, DAY)
  end
  members(p .. ':scopes').touched = true
end

-- The TPM charge corrected by the tokens used.
local function correct(hd, delta)
  if hd.tpm > 0 and delta ~= 0 then
    local key = hd.p .. ':tat:tok'
    local t = tat_of(key)
    if t.v then tat_put(key, t.v + delta * 60000 / hd.tpm) end
  end
end

-- Answers that were not 429s: tokens, budgets, and a success sent after
-- the pause began resets the scope's level.
local function settled(a)
  local hd = heads[tonumber(a[1])]
  local p, scope, n_ok, latest = hd.p, a[2], tonumber(a[3]), tonumber(a[4])
  correct(hd, tonumber(a[5]))
  learn(p, a, 6)
  if n_ok > 0 then
    local h = hash(p .. ':s:' .. scope)
    local started = hnum(h, 'started')
    if h.exists and (started == nil or latest >= started) then
      if h.f['unresolved'] ~= '0' then hput(h, 'unresolved', '0') end
      if h.f['level'] ~= '0' then hput(h, 'level', '0') end
    end
  end
  return 'none'
end

-- A 429 moves the scope's cooldown: one for a request sent before the
-- pause began only extends it; a probe of the ramp pauses again at the
-- same level; only a full pause and ramp that did not help escalate.
-- Returns 'effect ms': 'started', 'extended' or 'absorbed'.
local function limited(a)
  local hd = heads[tonumber(a[1])]
  local p, scope, sent, hint = hd.p, a[2], tonumber(a[3]), tonumber(a[4])
  correct(hd, tonumber(a[6]) - tonumber(a[5]))
  learn(p, a, 7)
  local h = hash(p .. ':s:' .. scope)
  sadd(p .. ':scopes', scope)
  if hint < 0 then hint = 0 end
  local started, untl, ramp_ended = hnum(h, 'started'), hnum(h, 'until'), hnum(h, 'ramp_ended')
  local level, unresolved, next_slot = hnum(h, 'level') or 0, hnum(h, 'unresolved') or 0, hnum(h, 'next_slot')
  if started and sent < started then
    -- Seen late: an echo of the overload that started this pause.
    local e = now + hint
    if untl and e > untl then
      hput(h, 'until', e)
      if next_slot then hput(h, 'next_slot', math.max(next_slot, e)) end
      return 'extended ' .. ms(e - now)
    end
    return 'absorbed 0'
  end
  local slow = hd.slow
  local ramp_end = ramp_ended
  if slow == 0 then ramp_end = untl end
  local in_ramp = started ~= nil and (ramp_end == nil or sent < ramp_end)
  local lvl
  if unresolved == 0 then lvl = 0 elseif in_ramp then lvl = level else lvl = level + 1 end
  local base, mult, cap = hd.base, hd.mult, hd.max
  local pause = math.min(base * mult ^ math.min(lvl, 64), math.max(cap, base))
  pause = math.max(pause, hint)
  hput(h, 'started', now)
  hput(h, 'until', now + pause)
  hput(h, 'level', string.format('%d', lvl))
  hput(h, 'unresolved', string.format('%d', unresolved + 1))
  hput(h, 'admitted', '0')
  hdel(h, 'ramp_ended')
  hdel(h, 'next_slot')
  hexpire(h, DAY + math.min(pause, 400 * DAY))
  return 'started ' .. ms(pause)
end

-- At a reserved slot that had to wait: did a pause begin meanwhile?
-- Returns 'ok' or 'void wait_ms' (the slot is given up).
local function confirm(a)
  local p, scope = heads[tonumber(a[1])].p, a[2]
  local wait = 0
  for _, s in ipairs(scopes_of(p, scope)) do
    local untl = hnum(hash(p .. ':s:' .. s), 'until')
    if untl and untl > now then wait = math.max(wait, untl - now) end
  end
  if wait > 0 then return 'void ' .. ms(wait) end
  return 'ok'
end

-- One decision for every host, for each of k reservations in turn: the
-- scope's cooldown (and its slow-start ramp) and learned budget must be
-- open now; then the RPM and TPM buckets (GCRA) give the earliest send
-- time, which is booked at once so the next one queues behind it. Each
-- answer is 'g,delay_ms,send_ms', 'c,wait_ms' (a pause or a used-up
-- budget) or 'l,wait_ms' (the slot is beyond the horizon), joined by ' '.
local function reserve_one(hd, scope, tokens)
  local p, rpm, tpm, burst, slow, spacing = hd.p, hd.rpm, hd.tpm, hd.burst, hd.slow, hd.spacing
  local states = {}
  local wait = 0
  for _, s in ipairs(scopes_of(p, scope)) do
    local h = hash(p .. ':s:' .. s)
    local st = {h = h, untl = hnum(h, 'until'), next_slot = hnum(h, 'next_slot'), ramp_ended = hnum(h, 'ramp_ended'),
                admitted = hnum(h, 'admitted') or 0, b_rem = hnum(h, 'b_rem'), b_reset = hnum(h, 'b_reset')}
    if st.untl then
      wait = math.max(wait, math.max(st.next_slot or st.untl, st.untl) - now)
    end
    if st.b_rem and st.b_rem <= 0 and st.b_reset > now then
      wait = math.max(wait, st.b_reset - now)
    end
    states[#states + 1] = st
  end
  if wait > 0 then return 'c,' .. ms(wait) end

  -- A bucket of `cap` units refilled at `per_min`; a cost above the bucket
  -- is admitted alone on a full bucket and leaves a debt.
  local send = now
  local rq_tat, rq_T, tk_tat, tk_T
  if rpm > 0 then
    rq_T = 60000 / rpm
    local cap = math.max(1, rpm / 60 * burst)
    rq_tat = tat_of(p .. ':tat:req').v or now
    send = math.max(send, rq_tat - (cap - 1) * rq_T)
  end
  if tpm > 0 then
    tk_T = 60000 / tpm
    local cap = math.max(1, tpm / 60 * burst)
    tk_tat = tat_of(p .. ':tat:tok').v or now
    send = math.max(send, tk_tat - (cap - math.min(tokens, cap)) * tk_T)
  end
  if send - now > hd.horizon then return 'l,' .. ms(send - now - hd.horizon) end
  if rpm > 0 then tat_put(p .. ':tat:req', math.max(rq_tat, send) + rq_T) end
  if tpm > 0 then tat_put(p .. ':tat:tok', math.max(tk_tat, send) + tokens * tk_T) end

  -- The slow-start ramp after a pause, and the learned budget, at the slot.
  for _, st in ipairs(states) do
    local h = st.h
    if st.untl and not st.ramp_ended and send >= st.untl then
      if slow == 0 or st.admitted >= slow then
        hput(h, 'ramp_ended', send)
      else
        local left = (slow - st.admitted) / slow
        local at = math.max(st.next_slot or st.untl, st.untl, send)
        local nxt = at + spacing * left
        local admitted = st.admitted + 1
        hput(h, 'next_slot', nxt)
        hput(h, 'admitted', string.format('%d', admitted))
        if admitted >= slow then hput(h, 'ramp_ended', nxt) end
      end
    end
    if st.b_rem and st.b_reset > now then
      hput(h, 'b_rem', string.format('%d', st.b_rem - 1))
    end
  end
  return 'g,' .. ms(send - now) .. ',' .. fmt(send)
end

local function reserve(a)
  local hd = heads[tonumber(a[1])]
  local scope, k = a[2], tonumber(a[3])
  local out = {}
  for r = 1, k do out[r] = reserve_one(hd, scope, tonumber(a[3 + r])) end
  return table.concat(out, ' ')
end

-- The batch's journal: 'start' notes that ids are about to be sent,
-- 'settle' that they got a definite answer; only while the chunk is still
-- held at this epoch (a claim made since is a new epoch). Returns 'ok' or
-- 'fenced'.
local epochs = {}
local journals = {}
local function journal(a)
  local p, op, c, e, k = a[1], a[2], a[3], a[4], tonumber(a[5])
  local ek = p .. ' ' .. c
  local current = epochs[ek]
  if current == nil then
    current = redis.call('HGET', p .. ':epoch', c) or false
    epochs[ek] = current
  end
  if current ~= e then return 'fenced' end
  local key = p .. ':journal:' .. c
  local j = journals[key]
  if not j then
    j = {}
    journals[key] = j
  end
  local v = false
  if op == 'start' then v = e end
  for r = 1, k do j[a[5 + r]] = v end
  return 'ok'
end

local function head(a)
  heads[#heads + 1] = {p = a[1], rpm = tonumber(a[2]), tpm = tonumber(a[3]), burst = tonumber(a[4]),
                       slow = tonumber(a[5]), spacing = tonumber(a[6]), horizon = tonumber(a[7]),
                       base = tonumber(a[8]), mult = tonumber(a[9]), max = tonumber(a[10])}
  return ''
end

-- Ops, in order: in-flight counts, then settles, then the rest.
local ops = {}
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  local args = {}
  for k = 1, n do args[k] = ARGV[i + 1 + k] end
  ops[#ops + 1] = {code = ARGV[i], args = args}
  i = i + 2 + n
end
local out = {}
for pass = 1, 3 do
  for idx, op in ipairs(ops) do
    local c = op.code
    if pass == 1 then
      if c == 'F' then out[idx] = flight(op.args) elseif c == 'H' then out[idx] = head(op.args) end
    elseif pass == 2 then
      if c == 'S' then out[idx] = settled(op.args) elseif c == 'X' then out[idx] = limited(op.args) end
    elseif c == 'R' then
      out[idx] = reserve(op.args)
    elseif c == 'C' then
      out[idx] = confirm(op.args)
    elseif c == 'J' then
      out[idx] = journal(op.args)
    elseif c ~= 'F' and c ~= 'H' and c ~= 'S' and c ~= 'X' then
      out[idx] = 'unknown op ' .. c
    end
  end
end

-- Write back what changed: `fields` (each field of `values` to write,
-- false to delete) of hash `k`.
local function flush(k, fields, values)
  local set, del = {}, {}
  for field in pairs(fields) do
    local v = values[field]
    if v then
      set[#set + 1] = field
      set[#set + 1] = v
    else
      del[#del + 1] = field
    end
  end
  if #set > 0 then redis.call('HSET', k, unpack(set)) end
  if #del > 0 then redis.call('HDEL', k, unpack(del)) end
end
for k, h in pairs(hashes) do
  flush(k, h.dirty, h.f)
  if h.px then redis.call('PEXPIRE', k, h.px) end
end
for k, s in pairs(sets) do
  if #s.added > 0 then redis.call('SADD', k, unpack(s.added)) end
  if s.touched and #s.list > 0 then redis.call('PEXPIRE', k, DAY) end
end
for k, t in pairs(tats) do
  if t.dirty then
    redis.call('SET', k, fmt(t.v), 'PX', math.floor(math.min(math.max(t.v - now, 0) + DAY, 400 * DAY)))
  end
end
for k, j in pairs(journals) do
  flush(k, j, j)
end
out[#ops + 1] = fmt(now)
return out
