-- A different pre-generated form body on every request: single-use tokens (refresh tokens, codes).
-- wrk -s token_file.lua URL -- FILE THREADS EXHAUSTED_BODY [HEADER ...]
--   FILE: one urlencoded body per line; thread i (0-based) of THREADS takes lines i, i+THREADS, ...
--   EXHAUSTED_BODY: sent once a thread has used its whole slice (an unknown token, so the server answers
--   400 and wrk counts it as non-2xx); done() prints "exhausted: N" so the harness can fail the cell.
-- Never reuses a token: a reused refresh token or code would make the server revoke its whole family.
-- done() also prints "used: ID N" per thread: the harness gives the unsent rest of each slice to later runs.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  fallback = args[3]
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for i = 4, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  bodies = {}
  local n = 0
  for line in io.lines(file) do
    if line ~= "" then
      if n % nthreads == id then
        bodies[#bodies + 1] = line
      end
      n = n + 1
    end
  end
  next_body = 1
  exhausted = 0
end

function request()
  local body = bodies[next_body]
  if body == nil then
    exhausted = exhausted + 1
    body = fallback
  else
    next_body = next_body + 1
  end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("exhausted")
    io.write(string.format("used: %d %d\n", thread:get("id"), thread:get("next_body") - 1))
  end
  io.write(string.format("exhausted: %d\n", total))
end
