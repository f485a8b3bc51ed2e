#!/usr/bin/env python3
"""Several nodes on one PostgreSQL (issue 20): `tripline serve` on the throughput workload (gen_stream.py, fixed seed),
on SQLite and on PostgreSQL with one node, then with the stream split over two and three nodes running at once, each
its own process reading its own part. Reports selectors/s (whole stream over the wall time from the first node's
start to the last node's exit, list loading included: every node loads the list), notifications, and that every
alert is there once. A throw-away PostgreSQL server is started with scripts/pg.sh and stopped at the end.

Usage: bench_nodes.py BINARY [N] [RUNS]   (defaults: 300000 selectors, 3 runs; the median is printed)"""
import json, re, os, shutil, statistics, subprocess, sys, tempfile, time

binary = os.path.abspath(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300000
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = tempfile.mkdtemp(prefix="tripline-nodes-")
os.chmod(work, 0o755)  # the server runs as another user (scripts/pg.sh) and must reach its directory
subprocess.run([sys.executable, f"{root}/Benchmarks/gen_stream.py", work, str(n), "14000", "5600", "400", "1"],
               check=True, stdout=subprocess.DEVNULL)
lines = open(f"{work}/stream.ndjson").read().splitlines(keepends=True)
with open(f"{work}/handle.key", "wb") as f:
    f.write(os.urandom(32))
pg = f"{work}/pg"
url = subprocess.run(["bash", f"{root}/scripts/pg.sh", "start", pg], check=True, capture_output=True,
                     text=True).stdout.strip()
base = url.rsplit("/", 1)[0]


def psql(db, sql):
    return subprocess.run(["bash", f"{root}/scripts/pg.sh", "psql", pg, "-d", db, "-Atc", sql], check=True,
                          capture_output=True, text=True).stdout.strip()


def run(nodes, postgres, k, each=False):
    """One run: a fresh state, the stream split over `nodes` processes; (seconds, notifications, alerts line).
    `each`: a group per alert (`group_by: ['...']`), so that every alert is a notification of its own."""
    d = f"{work}/run-{nodes}-{postgres}-{k}-{each}"
    os.makedirs(d)
    for sub in ("Watchlists", "Rules"):
        shutil.copytree(f"{work}/{sub}", f"{d}/{sub}")
    config = open(f"{work}/tripline.yaml").read()
    if each:
        config = re.sub(r"group_by: \[[^\]]*\]", "group_by: ['...']", config)
        assert "group_by: ['...']" in config, config
    db = f"n{nodes}r{k}{'e' if each else ''}"
    if postgres:
        psql("tripline", f"CREATE DATABASE {db}")
        config = config.replace("state: state/state.sqlite",
                                f"state: {base}/{db}?password_file={pg}/password&lease=5\nhandle_key_file: {work}/handle.key")
    open(f"{d}/tripline.yaml", "w").write(config)
    parts = [lines[i::nodes] for i in range(nodes)]
    for i, p in enumerate(parts):
        open(f"{d}/part{i}.ndjson", "w").writelines(p)
    start = time.monotonic()
    procs = [subprocess.Popen([binary, "serve", "--config", "tripline.yaml"], cwd=d,
                              stdin=open(f"{d}/part{i}.ndjson"), stdout=subprocess.DEVNULL,
                              stderr=open(f"{d}/err{i}", "w")) for i in range(nodes)]
    codes = [p.wait() for p in procs]
    took = time.monotonic() - start
    if any(codes):
        sys.exit(f"a node failed: {codes}; see {d}/err*")
    sent = [json.loads(l) for l in open(f"{d}/alerts.ndjson")]
    alerts = psql(db, "SELECT COUNT(*) || ' alerts, ' || COUNT(DISTINCT key) || ' keys, ' || SUM(count) || ' sightings' FROM alerts") if postgres else \
        subprocess.run(["python3", "-c", "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute('select count(*), count(distinct key), sum(count) from alerts').fetchone(); print(f'{r[0]} alerts, {r[1]} keys, {r[2]} sightings')",
                        f"{d}/state/state.sqlite"], capture_output=True, text=True).stdout.strip()
    return took, len(sent), len({s["notification_id"] for s in sent}), alerts


try:
    print(f"tripline serve, {n} selectors (1% on a 20,000-entry list), file receiver; median of {runs} (wall from the "
          f"first start to the last exit, list loading in every node):")
    for nodes, postgres in ((1, False), (1, True), (2, True), (3, True)):
        res = [run(nodes, postgres, k) for k in range(runs)]
        t = statistics.median(r[0] for r in res)
        _, notes, distinct, alerts = res[-1]
        print(f"  {'PostgreSQL' if postgres else 'SQLite':10} {nodes} node{'s' if nodes > 1 else ' '}: "
              f"{n / t:10,.0f} selectors/s ({t:.2f} s; runs {', '.join(f'{r[0]:.2f}' for r in res)}); "
              f"{notes} notifications ({distinct} distinct ids, {notes / t:,.0f}/s); {alerts}")
    print(f"the same with a group per alert (group_by: ['...']: every alert a notification of its own):")
    for nodes, postgres in ((1, False), (1, True), (2, True), (3, True)):
        res = [run(nodes, postgres, k, each=True) for k in range(runs)]
        t = statistics.median(r[0] for r in res)
        _, notes, distinct, alerts = res[-1]
        print(f"  {'PostgreSQL' if postgres else 'SQLite':10} {nodes} node{'s' if nodes > 1 else ' '}: "
              f"{notes / t:10,.0f} notifications/s ({notes} notifications, {distinct} distinct ids; {t:.2f} s; "
              f"runs {', '.join(f'{r[0]:.2f}' for r in res)}); {n / t:,.0f} selectors/s; {alerts}")
finally:
    subprocess.run(["bash", f"{root}/scripts/pg.sh", "stop", pg])
    shutil.rmtree(work, ignore_errors=True)
