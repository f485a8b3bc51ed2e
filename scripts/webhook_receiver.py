#!/usr/bin/env python3
"""A real HTTP webhook receiver for the tests: verifies each request with the `standardwebhooks` package (an
independent Standard Webhooks implementation) and logs one JSON line per request.

Usage: webhook_receiver.py PORTFILE SECRET LOG [STATUS,STATUS,...] [--port N] [--mode-file F]
                           [--retry-after VALUE] [--redirect URL] [--trickle SECONDS]
Binds 127.0.0.1 on a free port, or N (written to PORTFILE); answers with the listed statuses in turn, then 200
(429 comes with Retry-After: 1, or VALUE with --retry-after, which also goes with 503). --mode-file: a file
holding "up" or a status code, read at each request (the outage test switches it). --redirect: every answer is
302 with Location: URL. --trickle: the answer is 200 with its head at once, then a 1,000-byte body one byte
every SECONDS (a peer holding the client)."""
import json, sys, threading, time
import signal
# The test runner spawns us from threads that block signals; take SIGTERM back so terminate() works.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, signal.SIG_DFL)
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook

import argparse, os
ap = argparse.ArgumentParser()
ap.add_argument("portfile"); ap.add_argument("secret"); ap.add_argument("log"); ap.add_argument("statuses", nargs="?", default="")
ap.add_argument("--port", type=int, default=0); ap.add_argument("--mode-file")
ap.add_argument("--retry-after"); ap.add_argument("--redirect"); ap.add_argument("--trickle", type=float)
args = ap.parse_args()
portfile, secret, log = args.portfile, args.secret, args.log
statuses = [int(s) for s in args.statuses.split(",") if s]
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
            status = 200
            if statuses:
                status = statuses.pop(0)
            elif args.mode_file and os.path.exists(args.mode_file):
                mode = open(args.mode_file).read().strip()
                status = 200 if mode in ("", "up") else int(mode)
            if args.redirect: status = 302
            with open(log, "a") as f:
                f.write(json.dumps({"id": headers.get("webhook-id"), "verified": verified, "error": err,
                                    "status": status, "path": self.path, "headers": headers,
                                    "body": json.loads(body)}) + "\n")
        self.send_response(status)
        if status == 429 or (status == 503 and args.retry_after is not None):
            self.send_header("Retry-After", args.retry_after if args.retry_after is not None else "1")
        if args.redirect: self.send_header("Location", args.redirect)
        if args.trickle is not None:
            self.send_header("content-length", "1000"); self.end_headers(); self.wfile.flush()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x"); self.wfile.flush(); time.sleep(args.trickle)
            except OSError:
                pass
            return
        self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass

ThreadingHTTPServer.allow_reuse_address = True
srv = ThreadingHTTPServer(("127.0.0.1", args.port), H)
with open(portfile + ".tmp", "w") as f: f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
