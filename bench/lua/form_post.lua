-- The same form POST on every request (client credentials, introspection).
-- wrk -s form_post.lua URL -- BODY [HEADER ...]   (each HEADER as "Name: value")
-- wrk builds the request once per thread: no per-request Lua work.

function init(args)
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end
