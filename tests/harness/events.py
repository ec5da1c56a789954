"""GitHub-shaped webhook deliveries for tests: built like the recorded
fixtures in tests/fixtures/github/webhooks/, signed like GitHub signs
(X-Hub-Signature-256 = HMAC-SHA256 of the exact body with the secret)."""
import datetime
import hashlib
import hmac
import json
import uuid

_clock = [datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)]


def tick():
    """A strictly increasing updated_at, so events apply in order."""
    _clock[0] += datetime.timedelta(seconds=1)
    return _clock[0].strftime("%Y-%m-%dT%H:%M:%SZ")


def pull_request(action, repo, number, sha, ref="feature", title="A change",
                 user="alice", association="OWNER", fork=False, state=None,
                 updated_at=None, draft=False, labels=()):
    owner, name = repo.split("/", 1)
    head_repo = ("mallory/" + name) if fork else repo
    pr = {
        "number": number,
        "state": state or ("closed" if action == "closed" else "open"),
        "title": title, "draft": draft, "locked": False,
        "user": {"login": user, "type": "User"},
        "author_association": association,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": updated_at or tick(),
        "labels": [{"name": l} for l in labels],
        "head": {"ref": ref, "sha": sha, "label": "%s:%s" % (owner, ref),
                 "repo": {"name": name, "full_name": head_repo,
                          "clone_url": "https://github.invalid/%s.git" % head_repo}},
        "base": {"ref": "main", "sha": sha, "label": "%s:main" % owner,
                 "repo": {"name": name, "full_name": repo,
                          "clone_url": "https://github.invalid/%s.git" % repo}},
    }
    return {
        "action": action, "number": number, "pull_request": pr,
        "repository": {"name": name, "full_name": repo, "owner": {"login": owner},
                       "clone_url": "https://github.invalid/%s.git" % repo},
        "sender": {"login": user, "type": "User"},
    }


def issue_comment(repo, number, comment_id, text, user, association="MEMBER"):
    """A comment created on the PR, as a command arrives."""
    owner, name = repo.split("/", 1)
    return {
        "action": "created",
        "issue": {"number": number, "pull_request": {"url": "x"}, "state": "open"},
        "comment": {"id": comment_id, "body": text, "author_association": association,
                    "user": {"login": user, "type": "User"}},
        "repository": {"name": name, "full_name": repo, "owner": {"login": owner}},
        "sender": {"login": user, "type": "User"},
    }


def signed(secret, event, payload, delivery=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + sig,
        "User-Agent": "GitHub-Hookshot/test",
    }
    return body, headers
