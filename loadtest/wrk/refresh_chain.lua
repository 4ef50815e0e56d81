-- wrk script for refresh_token throughput: every refresh token is single-use, so each
-- answer's new refresh token goes back into a pool and the next request takes one from
-- it. The pool is seeded from the file named by $REFRESH_TOKENS (one token per line,
-- more lines than connections). A request that gets anything but a new token ends the
-- chain it was on; the summary line counts those.
--
--   REFRESH_TOKENS=tokens.txt wrk -t1 -c50 -d10s -s loadtest/wrk/refresh_chain.lua \
--       http://127.0.0.1:9094/api/v1/refresh_token
local pool = {}

function init(args)
  local path = os.getenv("REFRESH_TOKENS")
  for line in io.lines(path) do
    if #line > 0 then pool[#pool + 1] = line end
  end
end

function request()
  local token = table.remove(pool)
  if token == nil then
    -- Every chain is broken or in flight: send something that fails visibly.
    token = "pool-empty"
  end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refresh_token":"([A-Za-z0-9]+)"')
  if status == 200 and token then
    pool[#pool + 1] = token
  end
end

function done(summary, latency, requests)
  io.write(string.format("refresh chains: %d requests, %d answered with an HTTP error\n",
    summary.requests, summary.errors.status))
end
