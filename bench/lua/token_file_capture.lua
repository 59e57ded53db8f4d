-- token_file.lua, and also keeps one JSON string field of every 200 response (the new refresh token of a
-- code exchange) in CAPTURE_PREFIX.<thread id>, one per line, so later runs can spend them.
-- wrk -s token_file_capture.lua URL -- FILE THREADS EXHAUSTED_BODY FIELD CAPTURE_PREFIX [HEADER ...]

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "token_file.lua")

local base_init = init

function init(args)
  local rest = { args[1], args[2], args[3] }
  for i = 6, #args do
    rest[#rest + 1] = args[i]
  end
  pattern = '"' .. args[4] .. '"%s*:%s*"([^"]+)"'
  out = io.open(args[5] .. "." .. id, "w")
  out:setvbuf("line")
  base_init(rest)
end

function response(status, headers, body)
  if status == 200 then
    local value = body:match(pattern)
    if value then
      out:write(value, "\n")
    end
  end
end
