-- wrk script: POST a fixed JSON body with extra headers, on every request.
--
--   wrk -s benchmarks/wrk/post.lua URL -- BODY_FILE ["Header: value" ...]
--
-- Without script arguments it reads the environment instead:
--   WRK_BODY_FILE  a file with the body    WRK_BODY  the body itself
--   WRK_HEADERS    headers separated by newlines ("Authorization: Bearer sk-...")
-- No response() callback on purpose: defining one makes wrk parse every body and slows the
-- load generator. Status codes are still counted by wrk ("Non-2xx or 3xx responses").

local function read_file(path)
  local file = assert(io.open(path, "rb"), "cannot open body file " .. path)
  local data = file:read("*a")
  file:close()
  return data
end

local function add_header(line)
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local body_file = args[1] or os.getenv("WRK_BODY_FILE")
  if body_file and body_file ~= "" then
    wrk.body = read_file(body_file)
  else
    wrk.body = os.getenv("WRK_BODY") or "{}"
  end
  for i = 2, #args do
    add_header(args[i])
  end
  for line in (os.getenv("WRK_HEADERS") or ""):gmatch("[^\n]+") do
    add_header(line)
  end
end
