#!/usr/bin/env python3
"""`make bench` part: the HTTP API of `tripline serve` on loopback.

1. Ingest: the same 200,000-line NDJSON stream (1% hits) through standard input and through POST /v1/selectors in
   1 MB batches (one keep-alive connection, each batch answered 202 once durably committed) — selectors/s of each,
   measured in this run; the target is HTTP >= 0.8x standard input. Each side's start-up (loading lists, opening the
   database) is measured alone and left out of both.
2. With 100,000 alerts in the store: GET /v1/alerts?state=firing and POST /v1/alerts/{id}/ack under 64 concurrent
   connections (wrk, Debian): requests/s, p50, p99 — the target is p99 <= 20 ms.
Usage: bench_api.py path/to/tripline [seconds per wrk run]"""
import atexit, http.client, json, os, random, re, shutil, socket, subprocess, sys, tempfile, time

binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/tripline")
seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
random.seed(20261130)
d = tempfile.mkdtemp(prefix="tripline-bench-api-")
os.makedirs(f"{d}/Watchlists/be-fedpol"); os.makedirs(f"{d}/Rules")
N = 100_000
with open(f"{d}/Watchlists/be-fedpol/bench.yaml", "w") as f:
    f.write("watchlist: bench\nowner: be-fedpol\nhandling: {tlp: amber}\nreview_by: 2099-01-01\n"
            "default_priority: high\nentries:\n")
    for i in range(N):
        f.write(f'  - {{ref: B{i}, selectors: [{{type: phone, value: "+32470{i:06d}"}}]}}\n')


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


port = free_port()
config = f"""rules: Rules
watchlists: Watchlists
state: state/state.sqlite
operator: ops
partners:
  - {{id: ops, name: Ops, countries: [], contact: ops@example}}
  - {{id: be-fedpol, name: BE, countries: [BE], contact: be@example}}
principals:
  - {{id: admin, partner: ops, role: admin}}
  - {{id: feeder, partner: ops, role: ingest}}
  - {{id: analyst, partner: be-fedpol, role: analyst}}
receivers:
  - {{name: log, partner: be-fedpol, file_configs: [{{path: alerts.ndjson}}]}}
route: {{receiver: log, group_by: [owner, list], group_wait: 0s, group_interval: 1s, repeat_interval: 100h}}
"""
api = f'http: {{listen: "127.0.0.1:{port}", rate_limit: 100000, rate_burst: 100000}}\n'
with open(f"{d}/plain.yaml", "w") as f:
    f.write(config)
with open(f"{d}/api.yaml", "w") as f:
    f.write(config + api)


def stream(n, hit_every, start):
    out = []
    for i in range(start, start + n):
        v = f"+32470{random.randrange(N):06d}" if i % hit_every == 0 else f"+32471{i:06d}"
        out.append(json.dumps({"id": f"s{i}", "type": "phone", "value": v, "observed_at": "2016-10-20T08:00:00Z",
                               "source": {"item": f"D{i // 1000}", "operation": "bench", "country": "IQ"}}))
    return "\n".join(out) + "\n"


def fresh():
    shutil.rmtree(f"{d}/state", ignore_errors=True)
    for f in ("alerts.ndjson",):
        if os.path.exists(f"{d}/{f}"):
            os.remove(f"{d}/{f}")


def serve_stdin(data):
    fresh()
    t = time.time()
    r = subprocess.run([binary, "serve", "--config", "plain.yaml"], cwd=d, input=data.encode(),
                       stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr.decode()
    return time.time() - t


def token(principal):
    r = subprocess.run([binary, "tokens", "issue", "--config", "api.yaml", "--principal", principal, "--as",
                        "admin", "--reason", "bench"], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


started = []


@atexit.register
def stop_started():
    """A failure (wrk missing, an assertion) must not leave a `serve` running."""
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def start_api():
    p = subprocess.Popen([binary, "serve", "--config", "api.yaml"], cwd=d, stderr=open(f"{d}/serve.log", "a"))
    started.append(p)
    t = time.time()
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz"); c.getresponse().read(); c.close()
            return p, time.time() - t
        except OSError:
            if p.poll() is not None or time.time() - t > 60:
                raise SystemExit("serve did not start: " + open(f"{d}/serve.log").read())
            time.sleep(0.005)


def stop(p):
    p.terminate(); p.wait()


# 1. Ingest: standard input against HTTP, the same stream.
data = stream(200_000, 100, 0)
startup_stdin = min(serve_stdin("") for _ in range(3))
elapsed_stdin = serve_stdin(data) - startup_stdin
batches, cur, size = [], [], 0
for line in data.splitlines(keepends=True):
    cur.append(line); size += len(line)
    if size >= 1 << 20:
        batches.append("".join(cur).encode()); cur, size = [], 0
if cur:
    batches.append("".join(cur).encode())


def http_ingest(connections):
    """The batches over `connections` keep-alive connections at once (each sends every n-th batch and waits for
    each answer: 202 once durably committed), on a fresh state; seconds."""
    import threading
    fresh()
    headers = {"Authorization": "Bearer " + token("feeder"), "Tripline-Reason": "bench",
               "Content-Type": "application/x-ndjson"}
    p, _ = start_api()
    counts = [0] * connections

    def send(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for b in batches[k::connections]:
            conn.request("POST", "/v1/selectors", body=b, headers=headers)
            r = conn.getresponse(); body = r.read()
            assert r.status == 202, (r.status, body[:300])
            counts[k] += json.loads(body)["accepted"]
        conn.close()

    t = time.time()
    threads = [threading.Thread(target=send, args=(k,)) for k in range(connections)]
    for th in threads: th.start()
    for th in threads: th.join()
    elapsed = time.time() - t
    stop(p)
    assert sum(counts) == 200_000, counts
    return elapsed


elapsed_http = http_ingest(1)
elapsed_http2 = http_ingest(2)
rate_stdin, rate_http, rate_http2 = 200_000 / elapsed_stdin, 200_000 / elapsed_http, 200_000 / elapsed_http2
print(f"api: 200,000 selectors (1% hits) through standard input: {elapsed_stdin:.2f} s ({rate_stdin:,.0f}/s, "
      f"start-up {startup_stdin:.2f} s left out); through POST /v1/selectors in {len(batches)} batches of 1 MB: "
      f"one connection {elapsed_http:.2f} s ({rate_http:,.0f}/s) — HTTP/stdin {rate_http / rate_stdin:.2f}x "
      f"(target >= 0.8x); two connections {elapsed_http2:.2f} s ({rate_http2:,.0f}/s, {rate_http2 / rate_stdin:.2f}x)")

# 2. 100,000 alerts in the store (one per entry: every selector of the list once), then wrk.
fresh()
every = "".join(json.dumps({"id": f"a{i}", "type": "phone", "value": f"+32470{i:06d}",
                            "source": {"item": f"A{i}"}}) + "\n" for i in range(N))
t = time.time()
r = subprocess.run([binary, "serve", "--config", "plain.yaml"], cwd=d, input=every.encode(), stderr=subprocess.PIPE)
assert r.returncode == 0, r.stderr.decode()
filled = time.time() - t
analyst = token("analyst")
p, _ = start_api()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
c.request("GET", "/v1/alerts?state=firing&limit=1", headers={"Authorization": "Bearer " + analyst,
                                                            "Tripline-Reason": "bench"})
first = json.loads(c.getresponse().read())
c.close()
assert len(first["alerts"]) == 1, first
top = int(first["alerts"][0]["alert_id"])
print(f"api: {N:,} alerts made through standard input in {filled:.1f} s (the newest id {top})")

lua = f"{d}/ack.lua"
with open(lua, "w") as f:
    f.write(f"""
-- Each wrk thread acks its own alerts: thread t takes every other id of one walk over all of them (7919 is
-- prime to {N - 1}), so no alert is acked twice (a second ack by the same partner answers 409).
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local counter = 0
request = function()
  local id = {top} - (((counter * 2 + tid) * 7919) % {N - 1})
  counter = counter + 1
  return wrk.format("POST", "/v1/alerts/" .. id .. "/ack", nil, '{{"until":"resolved"}}')
end
""")


def wrk(path, script=None):
    cmd = ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-H", "Authorization: Bearer " + analyst,
           "-H", "Tripline-Reason: bench", "-H", "Content-Type: application/json"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    def ms(label):
        m = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return (float(rps.group(1)) if rps else float("nan"), ms("50%"), ms("99%"),
            int(non2xx.group(1)) if non2xx else 0, int(total.group(1)) if total else 0)


for what, path, script in [("GET /v1/alerts?state=firing", "/v1/alerts?state=firing", None),
                           ("POST /v1/alerts/{id}/ack", "/", lua)]:
    rps, p50, p99, bad, total = wrk(path, script)
    print(f"api: {what}, {N:,} alerts, 64 connections, {seconds} s (wrk): {rps:,.0f} requests/s, "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (target <= 20 ms), {total} requests, {bad} not 2xx")
stop(p)
shutil.rmtree(d, ignore_errors=True)
