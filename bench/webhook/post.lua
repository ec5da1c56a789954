-- post.lua - wrk script for bench/webhook: POSTs pre-signed GitHub
-- deliveries (bodies.txt: "<X-Hub-Signature-256>\t<body>" per line), each
-- with a unique X-GitHub-Delivery, and counts the statuses it gets back.
local threads = {}
local counter = 0

function setup(thread)
	counter = counter + 1
	thread:set("tid", counter)
	table.insert(threads, thread)
end

function init(args)
	n = 0
	accepted = 0
	other = 0
	run = os.getenv("BENCH_RUN") or "r"
	badsig = os.getenv("BENCH_BADSIG") and ("sha256=" .. string.rep("0", 64))
	nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
	-- Thread t sends bodies t, t+T, t+2T...: its own PRs, pushes in
	-- order. It keeps only those lines (the file is large).
	bodies = {}
	local i = 0
	for line in io.lines(os.getenv("BENCH_BODIES")) do
		if i % nthreads == tid - 1 then
			local tab = line:find("\t", 1, true)
			table.insert(bodies, {line:sub(1, tab - 1), line:sub(tab + 1)})
		end
		i = i + 1
	end
	-- Process CPU so far (both threads): done() subtracts the loading.
	init_cpu = os.clock()
end

function request()
	n = n + 1
	local b = bodies[(n - 1) % #bodies + 1]
	return wrk.format("POST", "/webhook", {
		["Content-Type"] = "application/json",
		["X-GitHub-Event"] = os.getenv("BENCH_EVENT") or "pull_request",
		["X-GitHub-Delivery"] = string.format("%s-%d-%d", run, tid, n),
		-- BENCH_BADSIG: the floor run; fcgi-app reads the body, checks
		-- the HMAC and answers 401, touching neither parser nor database.
		["X-Hub-Signature-256"] = badsig or b[1],
	}, b[2])
end

function response(status, headers, body)
	if status == 202 then
		accepted = accepted + 1
	else
		other = other + 1
	end
end

function done(summary, latency, requests)
	local a, o, c = 0, 0, 0
	for _, t in ipairs(threads) do
		a = a + t:get("accepted")
		o = o + t:get("other")
		c = math.max(c, t:get("init_cpu"))
	end
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
