#!/usr/bin/env python3
"""`make bench` part: throughput of `tripline serve` (1% hits, outbox in SQLite WAL); ingest -> log-receiver
and ingest -> webhook 2xx latency of a critical alert with group_wait: 0 (p50, p99); sustained webhook deliveries
per second. Usage: bench_serve.py path/to/tripline"""
import json, os, random, shutil, subprocess, sys, tempfile, time

binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/tripline")
random.seed(20261123)
d = tempfile.mkdtemp(prefix="tripline-bench-serve-")
os.makedirs(f"{d}/Watchlists/be-fedpol"); os.makedirs(f"{d}/Rules")
N = 10_000
with open(f"{d}/Watchlists/be-fedpol/bench.yaml", "w") as f:
    f.write("watchlist: bench\nowner: be-fedpol\nhandling: {tlp: amber}\nreview_by: 2099-01-01\ndefault_priority: critical\nentries:\n")
    for i in range(N):
        f.write(f'  - {{ref: B{i}, selectors: [{{type: phone, value: "+32470{i:06d}"}}]}}\n')
with open(f"{d}/tripline.yaml", "w") as f:
    f.write("""rules: Rules
watchlists: Watchlists
state: state/state.sqlite
operator: ops
partners:
  - {id: ops, name: Ops, countries: [], contact: ops@example}
  - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
receivers:
  - {name: log, partner: be-fedpol, file_configs: [{path: alerts.ndjson}]}
route: {receiver: log, group_by: [owner, list, item], group_wait: 0s, group_interval: 1ms, repeat_interval: 100h}
""")

# 1. Throughput: 200,000 lines, 1% on the list (each a new alert), the rest on no list.
lines = []
for i in range(200_000):
    v = f"+32470{random.randrange(N):06d}" if i % 100 == 0 else f"+32471{i:06d}"
    lines.append(json.dumps({"id": f"s{i}", "type": "phone", "value": v, "observed_at": "2016-10-20T08:00:00Z",
                             "source": {"item": f"D{i // 1000}", "operation": "bench", "country": "IQ"}}))
with open(f"{d}/in.ndjson", "w") as f:
    f.write("\n".join(lines) + "\n")
t = time.time()
r = subprocess.run([binary, "serve", "--config", "tripline.yaml"], cwd=d, stdin=open(f"{d}/in.ndjson"),
                   stderr=subprocess.PIPE, text=True)
elapsed = time.time() - t
assert r.returncode == 0, r.stderr
with open(f"{d}/alerts.ndjson") as f:
    notes = [json.loads(l) for l in f]
alerts = sum(len(n["alerts"]) for n in notes)
print(f"serve: 200,000 selectors (1% hits) from standard input to the log receiver: {elapsed:.2f} s, "
      f"{200_000 / elapsed:,.0f} selectors/s, {len(notes)} notifications, {alerts} alerts")

def start_follow():
    """A fresh state and an empty followed file; serve started on it."""
    shutil.rmtree(f"{d}/state", ignore_errors=True)
    open(f"{d}/follow.ndjson", "w").close()
    proc = subprocess.Popen([binary, "serve", "--config", "tripline.yaml", "--follow", "follow.ndjson"], cwd=d,
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc

def latency(tag, arrival, what):
    """Appends 200 critical hits one at a time; `arrival(item)` gives when the item's notification arrived."""
    lat = []
    for k in range(200):
        sel = {"id": f"{tag}{k}", "type": "phone", "value": f"+32470{k:06d}", "source": {"item": f"{tag}-{k}"}}
        start = time.time()
        with open(f"{d}/follow.ndjson", "a") as f:
            f.write(json.dumps(sel) + "\n")
        while True:
            t_arr = arrival(f"{tag}-{k}")
            if t_arr is not None:
                lat.append(t_arr - start); break
            if time.time() - start > 10:
                print(f"{what}: timed out"); break
            time.sleep(0.0005)
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000; p99 = lat[int(len(lat) * 0.99) - 1] * 1000
    print(f"serve: ingest -> {what} latency, critical alert, group_wait 0s, followed file: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000:.1f} ms ({len(lat)} alerts)")

# 2. Latency: serve follows a file; one critical hit at a time, timed until its notification is in the log.
os.remove(f"{d}/alerts.ndjson")
p = start_follow()
def in_log(item):
    try:
        with open(f"{d}/alerts.ndjson") as f:
            return time.time() if f'"{item}"' in f.read() else None
    except FileNotFoundError:
        return None
latency("LAT", in_log, "log receiver")
p.terminate(); p.wait()

# 3. Webhooks: a loopback receiver (answers 200 after reading the body) notes when each alert's POST arrived.
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
arrived = {}
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        now = time.time()
        with lock:
            for a in body["alerts"]:
                arrived.setdefault(a["labels"].get("item"), now)
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
with open(f"{d}/whsec", "w") as f:
    f.write("whsec_" + "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC0wMTIzNDU=")
with open(f"{d}/tripline.yaml") as f:
    cfg = f.read()
cfg = cfg.replace("file_configs: [{path: alerts.ndjson}]",
                  f'webhook_configs: [{{url: "http://127.0.0.1:{srv.server_address[1]}/hook", secret_file: whsec}}]')
cfg = cfg.replace("group_by: [owner, list, item]", "group_by: ['...']")
with open(f"{d}/tripline.yaml", "w") as f:
    f.write(cfg)
p = start_follow()
def at_webhook(item):
    with lock:
        return arrived.get(item)
latency("WH", at_webhook, "webhook 2xx (loopback receiver)")

# 4. Sustained deliveries: 5,000 new alerts at once, one notification each ('...'), all to the webhook.
M = 5000
start = time.time()
with open(f"{d}/follow.ndjson", "a") as f:
    for k in range(M):
        f.write(json.dumps({"id": f"S{k}", "type": "phone", "value": f"+32470{1000 + k:06d}",
                            "source": {"item": f"ST{k}"}}) + "\n")
while True:
    with lock:
        n = sum(1 for k in arrived if k and k.startswith("ST"))
        first = min((v for k, v in arrived.items() if k and k.startswith("ST")), default=None)
        last = max((v for k, v in arrived.items() if k and k.startswith("ST")), default=None)
    if n >= M or time.time() - start > 120:
        break
    time.sleep(0.05)
p.terminate(); p.wait()
srv.shutdown()
span = (last - first) if first and last and last > first else float("nan")
print(f"serve: sustained webhook deliveries: {n} of {M} notifications in {last - start:.2f} s from the write, "
      f"{n / span:,.0f} deliveries/s between the first and the last")
shutil.rmtree(d)
