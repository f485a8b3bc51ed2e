#!/usr/bin/env python3
"""A TCP relay in front of a PostgreSQL server that loses the answer to a COMMIT, for the state store's tests.

Usage: pg_commit_cut.py PORTFILE LOG TARGET_PORT [--cuts N] [--armed FILE] [--early]
Binds 127.0.0.1 on a free port (written to PORTFILE) and relays each connection to 127.0.0.1:TARGET_PORT. The
first N times (default 1) a client sends a COMMIT (a Parse or Query message whose text is COMMIT), the relay passes
it on, waits for the server's answer, and then closes both sides without passing that answer back: the
commit has landed, and the client cannot know. With --armed, only while FILE exists. With --early, the client's side
is closed as soon as the COMMIT is passed on (the server's side stays open until its answer): the client loses the
connection while the server may still be committing. LOG gets one JSON line per cut ({"cut": n})."""
import argparse, json, os, signal, socket, threading

signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
signal.signal(signal.SIGTERM, signal.SIG_DFL)

ap = argparse.ArgumentParser()
ap.add_argument("portfile"); ap.add_argument("log"); ap.add_argument("target", type=int)
ap.add_argument("--cuts", type=int, default=1); ap.add_argument("--armed")
ap.add_argument("--early", action="store_true")
a = ap.parse_args()
lock = threading.Lock()
state = {"cuts": 0}


def relay(src, dst, watch, cut):
    """Copies src to dst. From the client (`watch`): a COMMIT query, while cuts remain, sets `cut` after it is sent
    on; from the server: once `cut` is set, the answer is swallowed and both sockets are closed."""
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if cut.is_set():
                break  # the server's answer to the COMMIT: dropped
            if watch:
                # Marked before the COMMIT is passed on, so that its answer cannot slip through first.
                buf = (buf + data)[-64:]
                if b"\x00COMMIT\x00" in buf:
                    with lock:
                        if state["cuts"] < a.cuts and (a.armed is None or os.path.exists(a.armed)):
                            state["cuts"] += 1
                            with open(a.log, "a") as f:
                                f.write(json.dumps({"cut": state["cuts"]}) + "\n")
                            cut.set()
                    buf = b""
            dst.sendall(data)
            if watch and a.early and cut.is_set():
                # The client's side lost now; the server's side is closed by the other direction, after its answer.
                try:
                    src.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                src.close()
                return
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def serve(client):
    server = socket.create_connection(("127.0.0.1", a.target))
    cut = threading.Event()
    threading.Thread(target=relay, args=(client, server, True, cut), daemon=True).start()
    threading.Thread(target=relay, args=(server, client, False, cut), daemon=True).start()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
with open(a.portfile + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(a.portfile + ".tmp", a.portfile)
while True:
    c, _ = ls.accept()
    serve(c)
