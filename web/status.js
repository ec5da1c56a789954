/*
 * status.js - keeps the status page current without a framework: ages
 * tick, the environments table is re-rendered from /api/v1/environments
 * (same query string, so filters hold), and filter changes apply at once.
 * Rows are built with DOM calls and textContent only, never innerHTML:
 * titles and branch names are attacker-controlled. renderRow() mirrors
 * fcgi-app/page_index.c; keep the two in step.
 */
(function () {
	"use strict";

	var PHASES = ["pending", "awaiting_approval", "budget", "queued",
		"deploying", "ready", "failed", "stopping", "stopped",
		"destroying", "destroyed"];
	var KNOWN = PHASES.concat(["running", "succeeded", "cancelled",
		"skipped", "done", "dead"]);
	var DASH = "\u2014";
	var refreshes = 0;
	/* Server time minus browser time: ages follow the server's clock. */
	var skew = 0;

	function pad(n) {
		return n < 10 ? "0" + n : String(n);
	}

	/* The same two-unit form as duration_format() in C. */
	function duration(sec) {
		var s = sec > 0 ? Math.floor(sec) : 0;
		if (s < 60) return s + "s";
		if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
		if (s < 86400)
			return Math.floor(s / 3600) + "h " +
				pad(Math.floor(s % 3600 / 60)) + "m";
		return Math.floor(s / 86400) + "d " +
			pad(Math.floor(s % 86400 / 3600)) + "h";
	}

	function money(x) {
		if (!(x > 0)) x = 0;
		return "$" + (x > 0 && x < 0.01 ? x.toFixed(4) : x.toFixed(2));
	}

	function words(s) {
		return String(s).replace(/_/g, " ");
	}

	function stateClass(s) {
		return KNOWN.indexOf(s) >= 0 ? s : "unknown";
	}

	function ago(iso) {
		var t = Date.parse(iso);
		return isNaN(t) ? DASH :
			duration((Date.now() + skew - t) / 1000) + " ago";
	}

	function tickAges() {
		var ts = document.querySelectorAll("time.ago");
		for (var i = 0; i < ts.length; i++)
			ts[i].textContent = ago(ts[i].getAttribute("datetime"));
	}

	/* el("a", {href: u}, ["text", node]) */
	function el(tag, attrs, kids) {
		var n = document.createElement(tag);
		for (var k in attrs)
			if (attrs[k] !== null && attrs[k] !== undefined)
				n.setAttribute(k, attrs[k]);
		(kids || []).forEach(function (c) {
			n.appendChild(typeof c === "string" ?
				document.createTextNode(c) : c);
		});
		return n;
	}

	function link(url, text) {
		if (typeof url === "string" && /^https?:\/\//.test(url))
			return el("a", {href: url}, [text]);
		return document.createTextNode(text);
	}

	function age(iso) {
		if (!iso) return document.createTextNode(DASH);
		return el("time", {"class": "ago", datetime: iso, title: iso},
			[ago(iso)]);
	}

	/* Mirrors html_previews() in fcgi-app/html.c. */
	function previews(e) {
		var svcs = e.services || [], out = [];
		if (svcs.length === 0)
			return e.url ? [link(e.url, e.url)] : [];
		svcs.forEach(function (s, i) {
			if (i) out.push(" ");
			out.push(s.primary ? link(s.url, s.url) :
				el("span", {"class": "svc"}, [link(s.url, s.name)]));
		});
		return out;
	}

	function renderRow(e) {
		var sha = e.deployed_sha || e.sha;
		var state = [el("span", {"class": "state s-" +
			stateClass(e.phase), title: "desired: " + e.desired},
			[words(e.phase)])];
		if (e.desired !== "running" && e.desired !== e.phase)
			state.push(" ", el("span", {"class": "heading"},
				["\u2192 " + words(e.desired)]));
		if (e.error)
			state.push(el("div", {"class": "error", title: e.error},
				[e.error]));
		var commit = sha && e.pr_url ?
			el("code", {}, [link(e.pr_url.replace(/\/pull\/\d+$/,
				"/commit/" + sha), sha.slice(0, 7))]) :
			document.createTextNode(DASH);
		var b = e.last_build, deploy = DASH;
		if (b)
			deploy = el("span", {"class": "b-" + stateClass(b.status)},
				[(b.finished_at ? "" : "running ") +
					duration(b.duration_seconds)]);
		return el("tr", {"data-id": e.id}, [
			el("td", {"class": "repo"}, [e.repo]),
			el("td", {"class": "pr"}, [link(e.pr_url, "#" + e.pr)]),
			el("td", {"class": "title"}, [
				el("a", {href: "/env/" + e.id}, [e.title]),
				el("div", {"class": "branch"}, [e.branch || ""])]),
			el("td", {"class": "author"}, [e.author]),
			el("td", {}, state),
			el("td", {"class": "url"}, previews(e)),
			el("td", {"class": "sha"}, [commit]),
			el("td", {"class": "age"}, [age(e.created_at)]),
			el("td", {"class": "deploy"}, [deploy]),
			el("td", {"class": "cost", title: e.instance_hours.toFixed(2) +
				" instance hours"}, [money(e.cost)])]);
	}

	function renderSummary(envs) {
		var p = document.getElementById("summary");
		if (!p) return;
		var counts = {}, cost = 0;
		envs.forEach(function (e) {
			counts[e.phase] = (counts[e.phase] || 0) + 1;
			cost += e.cost;
		});
		var kids = [el("strong", {}, [String(envs.length)]),
			" environment" + (envs.length === 1 ? "" : "s")];
		PHASES.forEach(function (ph) {
			if (counts[ph])
				kids.push(" ", el("span", {"class": "state s-" + ph},
					[counts[ph] + " " + words(ph)]));
		});
		kids.push(" ", el("span", {"class": "cost"},
			[money(cost) + " so far"]));
		p.replaceChildren.apply(p, kids);
	}

	function setLive(text, bad) {
		var live = document.getElementById("live");
		if (!live) return;
		live.textContent = text;
		live.className = bad ? "live bad" : "live";
	}

	function refresh() {
		var table = document.getElementById("environments");
		if (!table || document.hidden) return;
		fetch("/api/v1/environments" + location.search,
			{cache: "no-store", headers: {Accept: "application/json"}})
			.then(function (r) {
				if (!r.ok) throw new Error("HTTP " + r.status);
				var total = Number(r.headers.get("X-Total-Count"));
				return r.json().then(function (envs) {
					return {envs: envs, total: total};
				});
			})
			.then(function (res) {
				var envs = res.envs, body = table.tBodies[0];
				body.replaceChildren.apply(body, envs.map(renderRow));
				/* Counts over more than this page stay as loaded. */
				if (res.total === envs.length)
					renderSummary(envs);
				document.getElementById("empty").hidden =
					envs.length > 0;
				refreshes++;
				document.documentElement.dataset.refreshes =
					String(refreshes);
				setLive("live \u00b7 " +
					new Date().toLocaleTimeString(), false);
			})
			.catch(function (err) {
				setLive("refresh failed (" + err.message +
					"); retrying", true);
			});
	}

	function start() {
		var now = Date.parse(document.body.dataset.now || "");
		if (!isNaN(now))
			skew = now - Date.now();
		tickAges();
		setInterval(tickAges, 1000);
		var form = document.querySelector("form.filter");
		if (form) {
			var selects = form.querySelectorAll("select");
			for (var i = 0; i < selects.length; i++)
				selects[i].addEventListener("change", function () {
					form.submit();
				});
		}
		var every = parseInt(document.body.dataset.refresh || "0", 10);
		if (every > 0 && document.getElementById("environments")) {
			refresh();
			setInterval(refresh, every * 1000);
			document.addEventListener("visibilitychange", refresh);
		}
	}

	if (document.readyState === "loading")
		document.addEventListener("DOMContentLoaded", start);
	else
		start();
})();
