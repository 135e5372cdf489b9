-- One all-or-nothing rate-limit decision over several policies, atomically.
-- KEYS[i]: state of policy i for the client key (all share one hash tag).
-- ARGV[1]: 1 to consume, 0 to peek; ARGV[2]: cost; ARGV[3]: "" or a fixed time in ms
-- (tests only); then per policy: kind ("g" GCRA, "s" sliding window), limit,
-- period_ms, capacity.
-- Time comes from the Redis server, so client clock skew changes nothing.
-- Returns {allowed, remaining, reset_ms, retry_ms, policy_index}; floats as strings.
if redis.replicate_commands then redis.replicate_commands() end

local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local consume = ARGV[1] == '1'
local cost = tonumber(ARGV[2])

local writes = {}
local best_remaining, best_reset, best_index = nil, 0, 1

for i = 1, #KEYS do
  local a = 4 + (i - 1) * 4
  local kind = ARGV[a]
  local limit = tonumber(ARGV[a + 1])
  local period = tonumber(ARGV[a + 2])
  local capacity = tonumber(ARGV[a + 3])
  local remaining, reset
  if kind == 'g' then
    local interval = period / limit
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    local new_tat = tat + cost * interval
    local allow_at = new_tat - capacity * interval
    if allow_at - now > 0.001 then  -- 1 us of slack for float rounding
      return {0, 0, tostring(tat - now), tostring(allow_at - now), i}
    end
    remaining = math.floor((now - allow_at) / interval + 1e-9)
    reset = new_tat - now
    writes[#writes + 1] = {KEYS[i], tostring(new_tat), math.ceil(new_tat - now) + 1}
  else
    local index = math.floor(now / period)
    local cur_index, cur, prev = index, 0, 0
    local raw = redis.call('GET', KEYS[i])
    if raw then
      local a1, a2, a3 = string.match(raw, '^(%-?%d+) (%d+) (%d+)$')
      cur_index, cur, prev = tonumber(a1), tonumber(a2), tonumber(a3)
    end
    if cur_index ~= index then
      if cur_index == index - 1 then prev = cur else prev = 0 end
      cur = 0
    end
    local elapsed = now / period - index
    local weighted = prev * (1 - elapsed) + cur
    reset = (index + 1) * period - now
    if weighted + cost > limit then
      local retry
      if cur + cost > limit then
        local need = 0
        if cur > 0 then need = 1 - (limit - cost) / cur end
        if need < 0 then need = 0 end
        retry = reset + need * period
      else
        local need = 0
        if prev > 0 then need = 1 - (limit - cost - cur) / prev end
        retry = (need - elapsed) * period
        if retry < 0 then retry = 0 end
      end
      return {0, 0, tostring(reset), tostring(retry), i}
    end
    remaining = math.floor(limit - weighted - cost)
    if remaining < 0 then remaining = 0 end
    writes[#writes + 1] = {KEYS[i], index .. ' ' .. (cur + cost) .. ' ' .. prev,
      math.ceil((index + 2) * period - now) + 1}
  end
  if best_remaining == nil or remaining < best_remaining then
    best_remaining, best_reset, best_index = remaining, reset, i
  end
end

if consume then
  for _, w in ipairs(writes) do
    redis.call('SET', w[1], w[2], 'PX', w[3])
  end
end
return {1, best_remaining, tostring(best_reset), '0', best_index}
