-- wrk script: POST a realistic WISeR request with a fresh MBI and Idempotency-Key each time.
local letters = {"A","C","D","E","F","G","H","J","K","M","N","P","Q","R","T","U","V","W","X","Y"}
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

local function L() return letters[math.random(#letters)] end
local function D() return tostring(math.random(0, 9)) end

local function mbi()
  return tostring(math.random(1, 9)) .. L() .. L() .. D() .. L() .. D() .. D() .. L() .. L() .. D() .. D()
end

function request()
  counter = counter + 1
  local body = string.gsub(wrk.body, "__MBI__", mbi())
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Idempotency-Key"] = "bench-" .. tostring(tid) .. "-" .. tostring(counter) .. "-" .. tostring(math.random(1, 1e9))
  return wrk.format("POST", wrk.path, headers, body)
end
