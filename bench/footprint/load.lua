-- load.lua - bench/footprint's webhook load: one signed pull_request body
-- (FOOTPRINT_BODY, its signature FOOTPRINT_SIG) under a new delivery id
-- each time; the signature covers the body only, so every request is
-- valid and each is recorded as its own delivery.
local counter = 0

function setup(thread)
	counter = counter + 1
	thread:set("tid", counter)
end

function init(args)
	n = 0
	local f = assert(io.open(os.getenv("FOOTPRINT_BODY"), "rb"))
	body = f:read("a")
	f:close()
	sig = os.getenv("FOOTPRINT_SIG")
end

function request()
	n = n + 1
	return wrk.format("POST", "/webhook", {
		["Content-Type"] = "application/json",
		["X-GitHub-Event"] = "pull_request",
		["X-GitHub-Delivery"] = string.format("fp-%d-%d", tid, n),
		["X-Hub-Signature-256"] = sig,
	}, body)
end
