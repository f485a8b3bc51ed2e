#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd): logs every accepted message, parsed back with Python's
`email` package (a real MIME parser), as one JSON line; or answers with scripted failures.

Usage: smtp_receiver.py PORTFILE LOG [--port N] [--starttls CERT KEY] [--implicit CERT KEY]
                        [--auth USER:PASSWORD] [--fail CODE,CODE,...] [--mode-file F]
--port 0 (default) binds a free port, written to PORTFILE. --starttls offers STARTTLS and requires it before
MAIL; --implicit speaks TLS from the first byte. --auth requires AUTH (PLAIN or LOGIN). --fail answers the
next transactions' DATA with these codes in turn (e.g. 451,550), then accepts. --mode-file: a file holding
"up" or a reply code, read at each DATA (the outage test switches it)."""
import argparse, email, email.policy, email.utils, json, os, ssl, sys, threading, time
import signal
# The test runner spawns us from threads that block signals; take SIGTERM back so terminate() works.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, signal.SIG_DFL)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("portfile"); ap.add_argument("log")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--starttls", nargs=2); ap.add_argument("--implicit", nargs=2)
ap.add_argument("--auth"); ap.add_argument("--fail", default=""); ap.add_argument("--mode-file")
a = ap.parse_args()
fails = [int(c) for c in a.fail.split(",") if c]
lock = threading.Lock()
seen = set()

def decoded_headers(msg):
    return [[k, str(v)] for k, v in msg.items()]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            code = fails.pop(0) if fails else None
            if code is None and a.mode_file and os.path.exists(a.mode_file):
                mode = open(a.mode_file).read().strip()
                code = None if mode in ("", "up") else int(mode)
        if code is not None:
            return f"{code} {'try again later' if code < 500 else 'rejected'} (scripted)"
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for p in msg.walk():
            if p.is_multipart():
                continue
            parts.append({"type": p.get_content_type(), "charset": p.get_content_charset(),
                          "encoding": p.get("Content-Transfer-Encoding"), "content": p.get_content(),
                          "defects": [str(d) for d in p.defects]})
        mid = str(msg.get("Message-ID", ""))
        try:
            date_ok = email.utils.parsedate_to_datetime(str(msg["Date"])) is not None
        except Exception:
            date_ok = False
        ad = getattr(session, "auth_data", None)
        with lock:
            dup = mid in seen
            seen.add(mid)
            rec = {"message_id": mid, "duplicate": dup, "subject": str(msg.get("Subject", "")),
                   "headers": decoded_headers(msg), "raw_headers": [[k, v] for k, v in msg.raw_items()],
                   "content_type": msg.get_content_type(), "parts": parts, "date_ok": date_ok,
                   "defects": [str(d) for d in msg.defects], "mail_from": envelope.mail_from,
                   "rcpt_tos": envelope.rcpt_tos, "auth": ad.login.decode() if isinstance(ad, LoginPassword) else None,
                   "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None, "raw": raw.decode("ascii", "replace")}
            with open(a.log, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    user, pw = a.auth.split(":", 1)
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == pw.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

def context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx

kw = {}
if a.starttls:
    kw.update(tls_context=context(*a.starttls), require_starttls=True)
if a.implicit:
    kw.update(ssl_context=context(*a.implicit))
if a.auth:
    kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(a.starttls))  # implicit TLS: aiosmtpd does not count it
port = a.port
if port == 0:
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
ctl = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost", **kw)
ctl.start()
with open(a.portfile + ".tmp", "w") as f: f.write(str(port))
os.rename(a.portfile + ".tmp", a.portfile)
try:
    while True: time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    ctl.stop()
