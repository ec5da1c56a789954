-- post.lua - wrk script for bench/webhook: POSTs pre-signed GitHub
-- deliveries (bodies.txt: "<X-Hub-Signature-256>\t<body>" per line), each
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
	run = os.getenv("BENCH_RUN") or "r"
	badsig = os.getenv("BENCH_BADSIG") and ("sha256=" .. string.rep("0", 64))
	event = os.getenv("BENCH_EVENT") or "pull_request"
	nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
	-- Thread t sends bodies t, t+T, t+2T...: its own PRs, pushes in
	-- order. Each request is formatted here, once, with its unique
	-- delivery id: wrk runs on the same two cores as the stack, and
	-- building a 24 KB string per request (and a response() callback,
	-- which makes wrk hand every answer to Lua) cost it 0.19 ms a
	-- request, more than nginx. Statuses come from wrk's own count of
	-- non-2xx answers; the durable check counts rows.
	reqs = {}
	local i = 0
	for line in io.lines(os.getenv("BENCH_BODIES")) do
		if i % nthreads == tid - 1 then
			local tab = line:find("\t", 1, true)
			table.insert(reqs, wrk.format("POST", "/webhook", {
				["Content-Type"] = "application/json",
				["X-GitHub-Event"] = event,
				["X-GitHub-Delivery"] = string.format("%s-%d-%d",
					run, tid, #reqs + 1),
				-- BENCH_BADSIG: the floor run; fcgi-app reads the
				-- body, checks the HMAC and answers 401, touching
				-- neither parser nor database.
				["X-Hub-Signature-256"] = badsig or line:sub(1, tab - 1),
			}, line:sub(tab + 1)))
		end
		i = i + 1
	end
	-- Process CPU so far (both threads): done() subtracts the loading.
	init_cpu = os.clock()
end

-- Past the end of the list the bodies repeat under new delivery ids
-- (run.sh warns: a repeated body is stale, so cheaper).
function request()
	n = n + 1
	if n > #reqs then
		return reqs[(n - 1) % #reqs + 1]:gsub("X%-GitHub%-Delivery: [^\r]*",
			string.format("X-GitHub-Delivery: %s-%d-%d-again", run, tid, n), 1)
	end
	return reqs[n]
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
