-- The training load of scripts/build-pgo: a mix of what a gateway in front of an API sees, the
-- authenticated proxied path most. The key comes from PCL_KEY (made by the script).
-- Requests are built in init(): wrk.format needs the Host that wrk sets up after loading this.
local reqs = {}

local function add(n, method, path, headers, body)
  for _ = 1, n do
    reqs[#reqs + 1] = wrk.format(method, path, headers, body)
  end
end

init = function()
  local key = os.getenv("PCL_KEY")
  local bearer = { ["Authorization"] = "Bearer " .. key }
  add(12, "GET", "/v1/users/42", bearer)
  add(3, "GET", "/v1/account/profile", { ["X-API-Key"] = key, ["X-Request-ID"] = "abc-123" })
  add(2, "POST", "/v1/billing/charges",
    { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" },
    '{"amount":100,"currency":"eur"}')
  add(2, "GET", "/v1/status")
  add(1, "GET", "/v1/users/42")
  add(1, "GET", "/v1/users/42",
    { ["Authorization"] = "Bearer ds_aaaaaaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" })
  add(1, "OPTIONS", "/v1/account/x",
    { ["Origin"] = "https://app.customer.example", ["Access-Control-Request-Method"] = "POST" })
  add(1, "GET", "/v1/users/42", { ["Authorization"] = "Bearer " .. key, ["Origin"] = "https://app.customer.example" })
  add(1, "GET", "/v1//account/../account/x", bearer)
  add(1, "GET", "/.well-known/security.txt")
end

local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
