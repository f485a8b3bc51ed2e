#!/usr/bin/env python3
"""A real HTTP webhook receiver for the tests: verifies each request with the `standardwebhooks` package (an
independent Standard Webhooks implementation) and logs one JSON line per request.

Usage: webhook_receiver.py PORTFILE SECRET LOG [STATUS,STATUS,...]
Binds 127.0.0.1 on a free port (written to PORTFILE); answers with the listed statuses in turn, then 200
(429 comes with Retry-After: 1)."""
import json, sys, threading
import signal
# The test runner spawns us from threads that block signals; take SIGTERM back so terminate() works.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, signal.SIG_DFL)
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook

portfile, secret, log = sys.argv[1], sys.argv[2], sys.argv[3]
statuses = [int(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 and sys.argv[4] else []
lock = threading.Lock()
wh = Webhook(secret)

class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            wh.verify(body, headers); verified = True; err = None
        except Exception as e:
            verified = False; err = str(e)
        with lock:
            status = statuses.pop(0) if statuses else 200
            with open(log, "a") as f:
                f.write(json.dumps({"id": headers.get("webhook-id"), "verified": verified, "error": err,
                                    "status": status, "body": json.loads(body)}) + "\n")
        self.send_response(status)
        if status == 429: self.send_header("Retry-After", "1")
        self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f: f.write(str(srv.server_address[1]))
import os; os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
