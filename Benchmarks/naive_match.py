#!/usr/bin/env python3
"""The naive baseline of issue 17: what an analyst would write in an afternoon. Reads the lists gen_stream.py writes
(one entry per line, by a regular expression, no YAML parser), then per NDJSON line: json.loads, digits stripped (00 to
+), a set lookup, prefix probing for phones; lower-cased e-mails in a set. Prints one JSON line per hit.

Usage: naive_match.py WATCHLIST_DIR < stream.ndjson > hits.ndjson"""
import glob, json, re, sys

entry = re.compile(r'ref: (\S+), selectors: \[\{type: (\w+), value: "?([^",}]*)')
phones, emails, prefixes = {}, {}, {}
for path in sorted(glob.glob(f"{sys.argv[1]}/**/*.yaml", recursive=True)):
    for line in open(path):
        m = entry.search(line)
        if not m:
            continue
        ref, t, v = m.groups()
        if t == "phone":
            phones["+" + re.sub(r"\D", "", v)] = ref
        elif t == "phone_prefix":
            prefixes["+" + re.sub(r"\D", "", v)] = ref
        elif t == "email":
            emails[v.lower()] = ref
lengths = sorted({len(p) for p in prefixes}, reverse=True)
digits = re.compile(r"\D")
out = sys.stdout
for line in sys.stdin:
    r = json.loads(line)
    v = r["value"]
    if r["type"] == "phone":
        d = digits.sub("", v)
        if v.startswith("00"):
            d = d[2:]
        key = "+" + d
        ref = phones.get(key)
        if ref is None:
            for n in lengths:
                ref = prefixes.get(key[:n])
                if ref is not None:
                    break
    elif r["type"] == "email":
        key = v.lower()
        ref = emails.get(key)
    else:
        continue
    if ref is not None:
        out.write(json.dumps({"id": r["id"], "value": key, "ref": ref}) + "\n")
