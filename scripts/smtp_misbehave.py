#!/usr/bin/env python3
"""Misbehaving SMTP servers for the client's limit tests (plain sockets, one thread per connection).

Usage: smtp_misbehave.py PORTFILE LOG MODE [--delay S] [--tls CERT KEY]
Binds 127.0.0.1 on a free port (written to PORTFILE). MODE:
  silent         accepts the connection and never says a word
  endless        greets with "220-" lines, as fast as it can, forever
  trickle        greets with "220-slow" lines one byte every DELAY seconds, forever (no reply ever completes)
  slow           a correct server that waits DELAY seconds before each reply
  echo-auth      offers AUTH PLAIN LOGIN without TLS and answers every AUTH step 535 quoting what it was sent
  echo-auth-garbled  the same, but its answer is not even a reply line ("5x5 " and what it was sent)
  echo-later     accepts AUTH PLAIN, then refuses MAIL with a 550 quoting the AUTH line
  starttls-junk  offers STARTTLS (--tls); after its 220 it pipelines "250" lines in the same write, before the
                 handshake (RFC 3207 §4.2 says the client must discard them); then a correct server in TLS
LOG gets one JSON line per command received ({"cmd": ..., "tls": ...}) and per message accepted
({"message": ...})."""
import argparse, json, os, signal, socket, ssl, threading, time

# The test runner spawns us from threads that block signals; take SIGTERM back so terminate() works.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, signal.SIG_DFL)

ap = argparse.ArgumentParser()
ap.add_argument("portfile"); ap.add_argument("log"); ap.add_argument("mode")
ap.add_argument("--delay", type=float, default=0.2); ap.add_argument("--tls", nargs=2)
a = ap.parse_args()
lock = threading.Lock()


def log(rec):
    with lock, open(a.log, "a") as f:
        f.write(json.dumps(rec) + "\n")


class Conn:
    def __init__(self, sock):
        self.sock, self.buf, self.tls, self.auth = sock, b"", False, ""

    def send(self, text):
        if a.mode == "slow":
            time.sleep(a.delay)
        self.sock.sendall(text.encode() + b"\r\n")

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise EOFError
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")


def dialogue(c):
    c.send("220 misbehave ESMTP")
    while True:
        cmd = c.line()
        log({"cmd": cmd, "tls": c.tls})
        verb = cmd.split(" ", 1)[0].upper()
        if verb == "EHLO":
            exts = ["misbehave"]
            if a.mode == "starttls-junk" and not c.tls:
                exts.append("STARTTLS")
            if a.mode.startswith("echo-"):
                exts.append("AUTH PLAIN LOGIN")
            c.send("\r\n".join(("250 " if i == len(exts) - 1 else "250-") + e for i, e in enumerate(exts)))
        elif verb == "STARTTLS" and a.mode == "starttls-junk":
            # One write: the 220 and junk the client must not read as the replies to its next commands.
            c.sock.sendall(b"220 go ahead\r\n250-AUTH PLAIN\r\n250 junk pipelined before TLS\r\n")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*a.tls)
            c.sock = ctx.wrap_socket(c.sock, server_side=True)
            c.buf, c.tls = b"", True
        elif verb == "AUTH" and a.mode == "echo-later":
            c.auth = cmd
            c.send("235 2.7.0 accepted")
        elif verb == "MAIL" and a.mode == "echo-later":
            c.send("550 5.7.1 you said " + c.auth)
        elif verb == "AUTH" and a.mode.startswith("echo-auth"):
            fail = "5x5 garbled " if a.mode == "echo-auth-garbled" else "535 5.7.8 authentication failed for "
            args = cmd.split(" ")
            if len(args) == 2 and args[1].upper() == "LOGIN":
                c.send("334 VXNlcm5hbWU6")
                user = c.line()
                log({"cmd": user, "tls": c.tls})
                c.send("334 UGFzc3dvcmQ6")
                pw = c.line()
                log({"cmd": pw, "tls": c.tls})
                c.send(fail + pw)
            else:
                c.send(fail + cmd)
        elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
            c.send("250 ok")
        elif verb == "DATA":
            c.send("354 go on")
            lines = []
            while True:
                line = c.line()
                if line == ".":
                    break
                lines.append(line[1:] if line.startswith("..") else line)
            log({"message": "\r\n".join(lines), "tls": c.tls})
            c.send("250 accepted")
        elif verb == "QUIT":
            c.send("221 bye")
            return
        else:
            c.send("500 unknown command")


def serve(sock):
    c = Conn(sock)
    try:
        if a.mode == "silent":
            while sock.recv(4096):
                pass
        elif a.mode == "endless":
            line = b"220-" + b"x" * 70 + b"\r\n"
            while True:
                sock.sendall(line * 64)
        elif a.mode == "trickle":
            while True:
                for b in b"220-slow\r\n":
                    sock.sendall(bytes([b]))
                    time.sleep(a.delay)
        else:
            dialogue(c)
    except (OSError, EOFError, ssl.SSLError):
        pass
    finally:
        try:
            c.sock.close()
        except OSError:
            pass


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(a.portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(a.portfile + ".tmp", a.portfile)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
