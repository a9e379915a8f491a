-- wrk script: each request carries the next Cookie value from a file (one per line), so the load spreads over many
-- sessions instead of one. The requests are formatted once in init, so the client spends no more per request.
-- Usage: wrk -s rotate-cookies.lua ... <url> -- <cookie file>
local requests = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      local headers = {}
      for name, value in pairs(wrk.headers) do headers[name] = value end
      headers["Cookie"] = line
      requests[#requests + 1] = wrk.format(nil, nil, headers)
    end
  end
  if #requests == 0 then error("no cookies in " .. args[1]) end
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end
