#!/usr/bin/env python3
"""The rules mix of the throughput issue: Tripline's rule evaluation beside python-hyperscan, same run, same
patterns, same selectors (gen_rules.py, fixed seed).

    bench_rules.py TRIPLINE_BENCH_BINARY [RUNS=5] [SELECTORS=100000] [LITERAL_MIN=5]
    bench_rules.py --matches DIR COUNT    (for the test suite: "index:rule,rule" per selector that hyperscan finds
                                           rules for, on DIR's selectors.tsv and patterns-COUNT.tsv)

For each set (1,000 / 5,000 / 10,000 rules) it prints the median ns/selector of both and checks that both found
the same rules for every selector (a digest of selector index -> sorted rule indexes). python-hyperscan: one
database of every pattern (HS_FLAG_SINGLEMATCH), one `scan` call per selector, its Python overhead included.
Tripline: `TRIPLINE_BENCH=rules-mix`, the rule evaluator on normalised selectors (normalisation not timed).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import hyperscan

COUNTS = [1000, 5000, 10000]


def fnv(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def database(directory, count):
    ids, exprs = [], []
    with open(os.path.join(directory, "patterns-%d.tsv" % count)) as f:
        for line in f:
            i, _, pcre = line.rstrip("\n").split("\t", 2)
            ids.append(int(i))
            exprs.append(pcre.encode())
    db = hyperscan.Database()
    t0 = time.perf_counter()
    db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(exprs))
    return db, time.perf_counter() - t0


def hyperscan_run(directory, count, values, runs):
    db, compile_s = database(directory, count)
    found = []

    def on_match(i, start, end, flags, context):
        found.append(i)

    times = []
    result = None
    for _ in range(runs):
        per = []
        t0 = time.perf_counter()
        for v in values:
            found.clear()
            db.scan(v, match_event_handler=on_match)
            if found:
                per.append(sorted(found))
            else:
                per.append(None)
        times.append((time.perf_counter() - t0) * 1e9 / len(values))
        result = per
    h = 0xCBF29CE484222325
    hits = 0
    for k, ids_ in enumerate(result):
        if ids_:
            hits += len(ids_)
            h = fnv(("%d:%s\n" % (k, ",".join(map(str, ids_)))).encode(), h)
    return statistics.median(times), compile_s, hits, "%016x" % h


def matches(directory, count):
    db, _ = database(directory, count)
    found = []
    with open(os.path.join(directory, "selectors.tsv")) as f:
        for k, line in enumerate(f):
            found.clear()
            db.scan(line.rstrip("\n").split("\t", 1)[1].encode(),
                    match_event_handler=lambda i, start, end, flags, context: found.append(i))
            if found:
                print("%d:%s" % (k, ",".join(map(str, sorted(found)))))


def main():
    if sys.argv[1] == "--matches":
        matches(sys.argv[2], int(sys.argv[3]))
        return
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    literal_min = sys.argv[4] if len(sys.argv) > 4 else "5"
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, os.path.join(here, "gen_rules.py"), d, ",".join(map(str, COUNTS)), str(n), "17", literal_min],
                       check=True)
        values = []
        with open(os.path.join(d, "selectors.tsv")) as f:
            for line in f:
                values.append(line.rstrip("\n").split("\t", 1)[1].encode())
        env = dict(os.environ, TRIPLINE_BENCH="rules-mix", TRIPLINE_RULES_MIX=d, TRIPLINE_RUNS=str(runs))
        out = subprocess.run([binary], env=env, check=True, capture_output=True, text=True).stdout
        ours = {}
        for line in out.splitlines():
            # rules-mix COUNT MEDIAN_NS HITS DIGEST EVALUATED MIN_NS
            if line.startswith("rules-mix "):
                _, c, ns, hits, digest, evaluated, _ = line.split()
                ours[int(c)] = (float(ns), int(hits), digest, int(evaluated))
        print("%-44s %12s %12s %8s %s" % ("rules mix, %d selectors, %s+ letter literals" % (n, literal_min), "tripline", "hyperscan", "ratio",
                                          "same hits"))
        failed = False
        for c in COUNTS:
            hs_ns, hs_compile, hs_hits, hs_digest = hyperscan_run(d, c, values, runs)
            ns, hits, digest, evaluated = ours[c]
            same = hits == hs_hits and digest == hs_digest
            failed |= not same
            print("%-44s %9.0f ns %9.0f ns %7.2fx %s (%d hits; %d conditions evaluated; hyperscan compile %.2f s)" % (
                "  %d rules" % c, ns, hs_ns, ns / hs_ns, "yes" if same else "NO", hits, evaluated, hs_compile))
        if 1000 in ours and 10000 in ours:
            print("  tripline 10,000 / 1,000 rules: %.2fx" % (ours[10000][0] / ours[1000][0]))
        if failed:
            print("bench_rules: Tripline and hyperscan found different rules", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
