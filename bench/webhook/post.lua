-- post.lua - wrk script for bench/webhook: sends the pre-signed GitHub
-- deliveries run.sh wrote (whole requests, "<length>\n<bytes>" each), each
-- with a unique X-GitHub-Delivery; wrk itself counts non-2xx answers.
local threads = {}
local counter = 0

function setup(thread)
	counter = counter + 1
	thread:set("tid", counter)
	table.insert(threads, thread)
end

function init(args)
	n = 0
	floor = os.getenv("BENCH_BADSIG")
	path = os.getenv("BENCH_BODIES") .. "." .. tid
	file = assert(io.open(path, "rb"))
	-- Process CPU so far (both threads): done() subtracts it.
	init_cpu = os.clock()
end

-- The next of this thread's requests, whole, as run.sh wrote them:
-- nothing is built per request (wrk shares the two cores with the
-- stack), and nothing is loaded in init(), which must stay short (see
-- run.sh on wrk's clock).
local function next_request()
	local len = file:read("n")
	if not len then
		-- Past the end: the bodies repeat under new delivery ids
		-- (stale, so cheaper; run.sh warns).
		file:close()
		file = assert(io.open(path, "rb"))
		again = true
		len = file:read("n")
	end
	file:read(1)
	return file:read(len)
end

function request()
	n = n + 1
	local r = next_request()
	if floor then
		-- The floor run: fcgi-app reads the body, checks the HMAC and
		-- answers 401, touching neither parser nor database.
		return (r:gsub("Signature%-256: sha256=%x+",
			"Signature-256: sha256=" .. string.rep("0", 64), 1))
	end
	if again then
		return (r:gsub("(X%-GitHub%-Delivery: [^\r]*)", "%1-again-" .. n, 1))
	end
	return r
end

function done(summary, latency, requests)
	local c = 0
	for _, t in ipairs(threads) do
		c = math.max(c, t:get("init_cpu"))
	end
	local o = summary.errors.status
	local a = summary.requests - o
	local secs = summary.duration / 1e6
	io.write(string.format(
		"RESULT accepted=%d other=%d seconds=%.3f per_s=%.1f " ..
		"p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d cpu_s=%.3f\n",
		a, o, secs, a / secs, latency:percentile(50) / 1000,
		latency:percentile(99) / 1000, latency.max / 1000,
		summary.errors.connect + summary.errors.read +
		summary.errors.write + summary.errors.timeout,
		os.clock() - c))
end
