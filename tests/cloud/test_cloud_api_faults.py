"""Issue 19: AWS faults at every step of the ec2 lifecycle, with instances
that really run (harness/instances.py). The proxy in front of moto gives
the first call of each (service, action) a fault, the kinds in turn: a
500, throttling (EC2's 503 RequestLimitExceeded, SSM's 400
ThrottlingException), an answer slower than aws.timeout_seconds after the
call was carried out, and a carried-out call whose answer is cut short.
Each operation is run again, as the queue would, until it settles: the
deploy must end with one instance serving the commit, the teardown with
nothing left. (GitHub's and Cloudflare's calls meet the same faults in
tests/cluster/test_api_faults.py.)"""
import time

from test_cloud_lifecycle import CloudBase
from test_local import Repo

KINDS = ["500", "throttle", "slow", "truncated"]
TIMEOUT = 2


class CloudApiFaults(CloudBase):
    @classmethod
    def extra_settings(cls):
        return dict(super().extra_settings(), **{"aws.timeout_seconds": TIMEOUT})

    def settle(self, *op, ok):
        """The operation run again after each retry until it settles."""
        for _ in range(40):
            p = self.tool(*op)
            if ok(p):
                return p
            self.assertNotEqual(self.field(p.stdout, "rc"), "failed", p.stdout + p.stderr)
            time.sleep(min(3.0, int(self.field(p.stdout, "retry_ms") or 500) / 1000))
        self.fail("%s never settled: %s%s" % (op, p.stdout, p.stderr))

    def test_every_aws_call_faulted_once(self):
        self.lifecycle(5, KINDS)

    def test_every_aws_call_faulted_once_rotated(self):
        # The same calls meet the other kinds: a write carried out whose
        # answer never came (RunInstances, TerminateInstances) is where a
        # leak or a second instance would come from.
        self.lifecycle(6, KINDS[2:] + KINDS[:2])

    def lifecycle(self, pr, kinds):
        repo = Repo(self.repos, "acme/faulty%d" % pr)
        slug, sha = "pr-%d-faulty%d" % (pr, pr), repo.commit("faulty")
        env_id = self.env_row(pr, slug, sha, repo.path)
        self.proxy.each = {"kinds": kinds, "seen": {}, "delay": TIMEOUT + 2}
        t0 = time.monotonic()
        try:
            self.settle("deploy", str(env_id), ok=lambda p: self.field(p.stdout, "rc") == "ok")
            live = self.live(slug)
            self.assertEqual(len(live), 1, live)
            self.assertIn(sha[:12], self.page(slug))
            self.settle("destroy", slug, str(env_id), ok=lambda p: "rc=0" in p.stdout)
        finally:
            seen = dict(self.proxy.each["seen"])
            self.proxy.each = None
        self.assertEqual(self.live(slug), [])
        # Not one instance more than the one that served, ever.
        self.assertEqual(len(self.instances(slug)), 1, self.instances(slug))
        self.assertEqual(self.parameters(slug), {})
        self.assertEqual([h for h in self.emu.hosts.values() if h.slug == slug and not h.gone],
                         [])
        by_kind = {k: sorted(a for (_, a), v in seen.items() if v == k) for k in KINDS}
        print("\n    %d kinds of AWS call each met one fault; converged in %.0f s: %s"
              % (len(seen), time.monotonic() - t0, by_kind))
        self.assertIn(("ec2", "RunInstances"), seen)
        self.assertIn(("ec2", "TerminateInstances"), seen)
        self.assertTrue(all(by_kind.values()), by_kind)
