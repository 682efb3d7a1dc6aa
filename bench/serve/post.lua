-- wrk script: POST the body in $KNN_WRK_BODY to /invocations as $KNN_WRK_CONTENT_TYPE, asking
-- for $KNN_WRK_ACCEPT; counts non-200 answers so run.py can refuse a run that failed.
local f = assert(io.open(os.getenv("KNN_WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.path = "/invocations"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("KNN_WRK_CONTENT_TYPE") or "application/json"
wrk.headers["Accept"] = os.getenv("KNN_WRK_ACCEPT") or "application/json"

local bad = 0
function response(status, headers, body)
    if status ~= 200 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    io.write(string.format("NON200 %d\n", summary.errors.status))
end
