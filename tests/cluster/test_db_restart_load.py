"""Issue 19: MariaDB restarted under webhook load. 32 keep-alive
connections POST validly signed pull_request deliveries, each with its own
delivery id, while the database is stopped (a normal shutdown) and started
again. Every answer is kept with the id it answered, so the check is per
delivery, not by counts: each one answered 2xx is in `deliveries`, and no
delivery answered 5xx is (the fcgi-app answers only after COMMIT, and 503
when it could not record).

Not wrk: wrk cannot tell which request a response answers, and the end of
its run cuts requests in flight, so it could only compare totals. This
client is 32 Python threads, each with its own connection, each finishing
the request it has in flight before it stops."""
import http.client
import threading
import time
import unittest

from harness import events
from harness.stack import Stack, wait_until

CONNECTIONS = 32
PRS = 200


class DatabaseRestartUnderLoad(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Ingestion alone: no workers to reconcile what arrives.
        cls.s = Stack("dbload", workers=False)
        try:
            cls.s.up()
        except BaseException:
            cls.s.cleanup()
            raise
        cls.s.allow_db_outage()

    @classmethod
    def tearDownClass(cls):
        cls.s.finish()

    def client(self, tid, stop, answers):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        n = 0
        while not stop.is_set():
            n += 1
            guid = "load-%d-%d" % (tid, n)
            pr = 1 + (tid * 7919 + n) % PRS
            body, headers = events.signed(
                self.s.secret, "pull_request",
                events.pull_request("synchronize", "acme/load", pr, "%040x" % (tid << 32 | n)),
                delivery=guid)
            try:
                conn.request("POST", "/webhook", body, headers)
                r = conn.getresponse()
                r.read()
                answers.append((guid, r.status))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as e:
                answers.append((guid, "error: %s" % e.__class__.__name__))
                conn.close()
                time.sleep(0.05)

    def test_restart_under_32_connections(self):
        stop, answers = threading.Event(), []
        threads = [threading.Thread(target=self.client, args=(i, stop, answers))
                   for i in range(CONNECTIONS)]
        for t in threads:
            t.start()
        try:
            time.sleep(4)
            self.s.stack("db-stop")
            time.sleep(2)
            self.s.stack("db-start")
            self.assertTrue(wait_until(lambda: self.s.get("/healthz").status == 200, timeout=30))
            time.sleep(4)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        ok = {g for g, st in answers if isinstance(st, int) and 200 <= st < 300}
        failed = {g for g, st in answers if isinstance(st, int) and st >= 500}
        other = [(g, st) for g, st in answers
                 if not isinstance(st, int) or 300 <= st < 500]
        recorded = {r[0] for r in self.s.sql(
            "SELECT guid FROM deliveries WHERE guid LIKE 'load-%'")}
        print("\n    %d deliveries over %d connections: %d answered 2xx, all recorded; "
              "%d answered 5xx, none recorded; %d other (%s)"
              % (len(answers), CONNECTIONS, len(ok), len(failed), len(other),
                 sorted(set(str(st) for _, st in other))))
        self.assertEqual(sorted(ok - recorded), [], "answered 2xx, not recorded")
        self.assertEqual(sorted(failed & recorded), [], "answered 5xx, yet recorded")
        # The restart happened under load: both kinds of answer were seen.
        self.assertGreater(len(ok), 100)
        self.assertGreater(len(failed), 0, "no delivery met the database down")
        self.assertEqual([g for g, st in other if isinstance(st, int)], [])
        self.assertEqual(self.s.get("/healthz").status, 200)


if __name__ == "__main__":
    unittest.main()
