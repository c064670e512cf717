-- Charge campaign budgets for one credit, all or nothing, never past a budget.
-- KEYS[1] = campaign spend hash (is:{T}:campaign-spend): campaign id -> points spent
-- ARGV = triples: campaign id, points to charge, budget
-- Returns {1} when every charge fits and is made; otherwise {0, id, spent, id, spent, ...}
-- with what each campaign has spent, and nothing is charged.
local refused = {}
for i = 1, #ARGV, 3 do
  local spent = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if spent + tonumber(ARGV[i + 1]) > tonumber(ARGV[i + 2]) then
    refused[#refused + 1] = ARGV[i]
    refused[#refused + 1] = spent
  end
end
if #refused > 0 then
  table.insert(refused, 1, 0)
  return refused
end
for i = 1, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return {1}
