"""A route that answered once keeps answering (nginx_generation.c), with
the stack's real nginx kept busy by wrk: each round writes a new route
(a new token) the way a deploy does, waits as the verify step does, then
asks five more times. With the wait, every answer carries the new token.
Without it (route_run -n: the check as it was before) the old generation
of workers still answers some of them, and the test prints how many.
route_run asks again itself, at once: a new process would come too late
for most of the old generation's 100 ms."""
import http.server as httpd
import os
import subprocess
import threading
import unittest

from harness.stack import ROOT, Stack, free_port, http

RUN = os.path.join(ROOT, "build", "asan", "tests", "tools", "route_run")
ROUNDS = int(os.environ.get("EPHEMERA_RELOAD_ROUNDS", "80"))
SLUG = "pr-1-reload"


class Upstream(httpd.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"up\n")

    def log_message(self, *args):
        pass


class NginxReloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("reload", workers=False)
        cls.s.up()
        cls.upstream = httpd.ThreadingHTTPServer(("127.0.0.1", free_port()), Upstream)
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()
        # Busy workers: the moment a new generation can answer first.
        cls.load = subprocess.Popen(
            ["wrk", "-t2", "-c32", "-d600s", "-H", "Host: nobody.localhost",
             cls.s.url("/")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        cls.load.terminate()
        cls.load.wait()
        cls.upstream.shutdown()
        cls.s.finish()

    def rounds(self, first, *flags):
        """Rounds whose route answered from an older configuration after
        route_run said it was verified."""
        stale = 0
        for i in range(first, first + ROUNDS):
            token = "b%d" % i
            r = subprocess.run([RUN, "-c", self.s.config] + list(flags) +
                               ["-k", "5", SLUG, token, "127.0.0.1:%d" % self.upstream.server_port],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=90)
            self.assertEqual(r.returncode, 0, r.stdout)
            if "stale=0" not in r.stdout.split():
                stale += 1
        return stale

    def test_a_verified_route_is_the_only_one_answering(self):
        before = self.rounds(1000, "-n")
        after = self.rounds(2000)
        print("    (%d rounds each: %d answered from an older configuration after the "
              "first answer; %d after waiting for the generation)" % (ROUNDS, before, after))
        self.assertEqual(after, 0)


if __name__ == "__main__":
    unittest.main()
