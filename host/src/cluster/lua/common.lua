-- Shared by every limiter script (prepended to each): the server's clock in
-- milliseconds, numbers stored as text, bounded expiries.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function num(v)
  if v then return tonumber(v) end
  return nil
end
local function fmt(x)
  return string.format('%.3f', x)
end
-- A wait as whole milliseconds, at most a year (an absurd debt stays finite).
local function ms(x)
  if x ~= x or x < 0 then return '0' end
  return string.format('%d', math.ceil(math.min(x, 31536000000)))
end
local DAY = 86400000
