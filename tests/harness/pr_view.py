"""What a reviewer sees of a PR on the GitHub fake (tests/fakes/github.py),
reduced for assertions, and a wait until it settles: for the tests that
drive PRs through the real workers and check the final state GitHub
holds, not what was sent."""
import html
import re
import time

CONTEXT = "ephemera/preview"  # the commit status Ephemera sets


def pr_view(gh, repo, pr):
    """The bot comment (raw and with entities decoded: the comment escapes
    punctuation as entities), each Deployment's last state, and the last
    commit status of each commit."""
    v = gh.pr_view(repo, pr)
    comment = v["comments"]
    body = comment[0] if comment else ""
    return {
        "comments": len(comment),
        "headline": re.search(r"^### (.*)$", body, re.M).group(1) if comment else None,
        "body": body,
        "text": html.unescape(body),
        "deployments": [(d["sha"], d["state"]) for d in v["deployments"]],
        "raw": v,
        "commit": {s["sha"]: (s["state"], s["description"], s["target_url"])
                   for s in v["commit_statuses"] if s["context"] == CONTEXT},
    }


def settle(view, check, timeout=30):
    """Waits until view() satisfies `check` (a function raising
    AssertionError until it does), then returns that view."""
    deadline = time.monotonic() + timeout
    while True:
        v = view()
        try:
            check(v)
            return v
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
