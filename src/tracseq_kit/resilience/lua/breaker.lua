-- Shared circuit-breaker state for a fleet of processes.
-- KEYS[1]: state hash   KEYS[2]: window hash (bucketed counts)
-- ARGV[1]: operation (sync | acquire | result | release | set)
-- ARGV[2..]: operation arguments, then the configuration:
--   window_ms, bucket_ms, minimum_calls, failure_rate, slow_rate, probes,
--   max_half_open_ms, ttl_ms, then the open durations (ms) for the 1st..nth opening.
-- Time comes from the Redis server, so client clocks never matter.
-- Returns {state, generation, remaining_ms, admitted}.
if redis.replicate_commands then redis.replicate_commands() end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local cfg = 6  -- first configuration argument for ops with 4 arguments
local window_ms = tonumber(ARGV[cfg])
local bucket_ms = tonumber(ARGV[cfg + 1])
local minimum_calls = tonumber(ARGV[cfg + 2])
local failure_rate = tonumber(ARGV[cfg + 3])
local slow_rate = tonumber(ARGV[cfg + 4])
local probes = tonumber(ARGV[cfg + 5])
local max_half_open_ms = tonumber(ARGV[cfg + 6])
local ttl_ms = tonumber(ARGV[cfg + 7])
local first_wait = cfg + 8

local s = redis.call('HMGET', KEYS[1], 'state', 'gen', 'until', 'opens', 'admitted', 'done',
  'failed', 'slow', 'since')
local state = s[1] or 'closed'
local gen = tonumber(s[2]) or 0
local open_until = tonumber(s[3]) or 0
local opens = tonumber(s[4]) or 0
local admitted = tonumber(s[5]) or 0
local done = tonumber(s[6]) or 0
local failed = tonumber(s[7]) or 0
local slow = tonumber(s[8]) or 0
local since = tonumber(s[9]) or 0

local function wait_for(n)
  local i = first_wait + n - 1
  if i > #ARGV then i = #ARGV end
  return tonumber(ARGV[i])
end

local function go(to)
  gen = gen + 1
  state = to
  if to == 'open' then
    opens = opens + 1
    open_until = now + wait_for(opens)
  elseif to == 'half_open' then
    since = now
    admitted, done, failed, slow = 0, 0, 0, 0
  elseif to == 'closed' then
    opens = 0
    redis.call('DEL', KEYS[2])
  end
end

local function save()
  redis.call('HSET', KEYS[1], 'state', state, 'gen', gen, 'until', open_until, 'opens', opens,
    'admitted', admitted, 'done', done, 'failed', failed, 'slow', slow, 'since', since)
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end

local function time_driven()
  if state == 'half_open' and now - since >= max_half_open_ms then
    go('open')
    return true
  end
  return false
end

local result_admitted = 0
local changed = time_driven()

if op == 'sync' then
  -- ARGV[2]: generation the counts belong to; ARGV[3..5]: calls, failures, slow calls
  local calls, fails, slows = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  if state == 'closed' and tonumber(ARGV[2]) == gen and calls > 0 then
    local bucket = math.floor(now / bucket_ms)
    redis.call('HINCRBY', KEYS[2], bucket .. ':c', calls)
    if fails > 0 then redis.call('HINCRBY', KEYS[2], bucket .. ':f', fails) end
    if slows > 0 then redis.call('HINCRBY', KEYS[2], bucket .. ':s', slows) end
    redis.call('PEXPIRE', KEYS[2], window_ms + bucket_ms)
    local oldest = bucket - math.floor(window_ms / bucket_ms) + 1
    local all = redis.call('HGETALL', KEYS[2])
    local c, f, sl = 0, 0, 0
    for i = 1, #all, 2 do
      local field = all[i]
      local sep = string.find(field, ':', 1, true)
      local b = tonumber(string.sub(field, 1, sep - 1))
      if b < oldest then
        redis.call('HDEL', KEYS[2], field)
      else
        local kind = string.sub(field, sep + 1)
        local v = tonumber(all[i + 1])
        if kind == 'c' then c = c + v elseif kind == 'f' then f = f + v else sl = sl + v end
      end
    end
    if c >= minimum_calls and (f >= failure_rate * c or sl >= slow_rate * c) then
      go('open')
      changed = true
    end
  end
elseif op == 'acquire' then
  if state == 'open' and now >= open_until then
    go('half_open')
    changed = true
  end
  if state == 'closed' or state == 'disabled' then
    result_admitted = 1
  elseif state == 'half_open' and admitted < probes then
    admitted = admitted + 1
    result_admitted = 1
    changed = true
  end
elseif op == 'result' then
  -- ARGV[2]: generation of the probe; ARGV[3]: 1 if failed; ARGV[4]: 1 if slow
  if state == 'half_open' and tonumber(ARGV[2]) == gen then
    done = done + 1
    failed = failed + tonumber(ARGV[3])
    slow = slow + tonumber(ARGV[4])
    changed = true
    if done >= probes then
      if failed >= failure_rate * done or slow >= slow_rate * done then
        go('open')
      else
        go('closed')
      end
    end
  end
elseif op == 'release' then
  if state == 'half_open' and tonumber(ARGV[2]) == gen and admitted > 0 then
    admitted = admitted - 1
    changed = true
  end
elseif op == 'set' then
  -- ARGV[2]: closed | forced_open | disabled
  go(ARGV[2])
  changed = true
end

if changed then save() end
local remaining = 0
if state == 'open' then remaining = math.max(0, open_until - now) end
return {state, gen, remaining, result_admitted}
