-- wrk script for bench/cspload: POSTs a Chrome legacy report-uri body
-- (Content-Type application/csp-report) to the URL given to wrk. The
-- document path and the blocked script's name carry a per-thread counter,
-- so successive reports are not byte-identical.
local counter = 0
tid = 0 -- global: setup() sets it per thread
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/csp-report"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

local fmt = '{"csp-report":{"document-uri":"https://shop.example/checkout?step=%d","referrer":"",' ..
  '"violated-directive":"script-src-elem","effective-directive":"script-src-elem",' ..
  '"original-policy":"default-src \'self\'; script-src \'self\'; report-uri https://vigil.example/csp-report",' ..
  '"disposition":"enforce","blocked-uri":"https://evil.example/x%d-%d.js","status-code":200,"script-sample":""}}'

function request()
  counter = counter + 1
  local body = string.format(fmt, counter % 4, tid, counter % 1000)
  return wrk.format(nil, nil, nil, body)
end
