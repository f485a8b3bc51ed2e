#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora under Fuzz/Corpus/<target>/ from the repository's own inputs: Examples/ (the
samples and the bad-selectors file), Watchlists/, Rules/ and its tests, and hand-written cases for what those do not
show (SMTP dialogues, JSON edge cases). Deterministic; run from the repository root. The seeds that must be signed
(notes, audit bundles) are written by the replay test: TRIPLINE_WRITE_SEEDS=1 swift test --filter FuzzReplay."""
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Fuzz", "Corpus")
TYPES = ["phone", "email", "imei", "imsi", "ip", "username", "document", "wallet", "name"]  # SelectorType order


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def main():
    samples = read("Examples/selectors.ndjson").splitlines()
    bad = read("Examples/bad-selectors.ndjson").splitlines()
    lines = samples + bad
    # JSON documents and records, one per file; the sample stream in pieces for the line reader and the step.
    for i, line in enumerate(lines):
        write("json", f"example-{i:02d}", line)
        write("record", f"example-{i:02d}", line)
    for i, doc in enumerate([
        b'{"a":[1,2.5e-3,-0,true,false,null,"\\u00e9\\ud83d\\ude00\\n"]}', b"[]", b"{}", b'"\\/"', b"1E400",
        b'{"a":1,"a":2}', b'"\\ud800"', b"NaN", b'[1,]', b'{"x":' * 70 + b"1" + b"}" * 70, b"\xef\xbb\xbf{}",
        b' \t\r\n[ 1 ] ', b'"\xed\xa0\x80"', b'"\x7f"', b'-01', b'1.', b'.5', b'"\t"',
    ]):
        write("json", f"edge-{i:02d}", doc)
    for k in range(0, len(samples), 8):
        chunk = b"\n".join(samples[k:k + 8]) + b"\n"
        write("ndjson", f"samples-{k:02d}", bytes([k * 7 % 64]) + chunk)
        write("record", f"stream-{k:02d}", chunk)
    write("ndjson", "bad", bytes([5]) + b"\r\n".join(bad) + b"\r\n")
    write("ndjson", "long-line", bytes([3]) + b"x" * 100 + b"\n{}\n" + b"y" * 49)
    # Values by type, for the normalisers (first byte: the type and options) and the phone and name targets.
    values = {t: set() for t in TYPES}
    for line in lines:
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and o.get("type") in values and isinstance(o.get("value"), str):
            values[o["type"]].add(o["value"])
    for path in sorted(glob.glob(os.path.join(ROOT, "Watchlists/*/*.yaml")) + [os.path.join(ROOT, "Examples/nl-returnees.yaml")]):
        for t, v in re.findall(r'type: (\w+), value: "([^"]*)"', open(path, encoding="utf-8").read()):
            if t in values:
                values[t].add(v)
    for t in TYPES:
        for i, v in enumerate(sorted(values[t])):
            write("normalize", f"{t}-{i:02d}", bytes([TYPES.index(t)]) + v.encode())
    for i, v in enumerate(sorted(values["phone"]) + ["+1 (650) 253-0000", "00 44 20 7946 0958", "+800 1234 5678",
                                                     "٠٧٧٠ ١٢٣ ٤٥٦٧", "tel:+33-1-42-68-53-00;ext=12"]):
        write("phone", f"phone-{i:02d}", bytes([i % 14 + 16 * (i % 3)]) + v.encode())
    for i, v in enumerate(sorted(values["email"]) + ["Ali <Ali.Omar+x@GMail.com>", "jöhn@bücher.example",
                                                     "x@xn--bcher-kva.example", "mailto:a@b.c", "\"a b\"@c.d"]):
        write("email", f"email-{i:02d}", bytes([i % 2]) + v.encode())
    names = sorted(values["name"]) + ["ADAN, Abukar Ali", "AL-SHAMI, Ahmad", "HUSAYN, 'Ali", "Qoussaï Hussein",
                                      "Иван Петрович Сидоров", "عبد الله", "Abu Omar", "Mr. John Smith Jr."]
    for i, v in enumerate(names):
        write("name", f"name-{i:02d}", v)
    # YAML: every list and rule file; lists and rules to their loaders; the conditions alone.
    yamls = sorted(glob.glob(os.path.join(ROOT, "Watchlists/*/*.yaml")) + glob.glob(os.path.join(ROOT, "Rules/*.yml"))
                   + glob.glob(os.path.join(ROOT, "Rules/tests/*.yml")) + glob.glob(os.path.join(ROOT, "Examples/*.yaml")))
    for path in yamls:
        rel = os.path.relpath(path, ROOT).replace("/", "_")
        data = open(path, "rb").read()
        write("yaml", rel, data)
        if "/Watchlists/" in path:
            write("watchlist", rel, data.replace(b"owner: ", b"owner: fuzz-a #"))
        elif "/Rules/" in path and "/tests/" not in path:
            write("rules", rel, data)
    conditions = set()
    for path in glob.glob(os.path.join(ROOT, "Rules/*.yml")):
        conditions.update(re.findall(r"^  condition: (.+)$", open(path, encoding="utf-8").read(), re.M))
    conditions.update(["1 of selection* and not 1 of filter*", "all of them", "(a or b) and not (c or d)",
                       "2 of sel_*", "any of them", "not not a", "a | count() > 5", "((a)"])
    for i, c in enumerate(sorted(conditions)):
        write("condition", f"condition-{i:02d}", c)
    # SMTP: a whole session's replies, multi-line EHLO, and malformed ones.
    for i, s in enumerate([
        "220 mx.example ESMTP ready\r\n",
        "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
        "220 ready\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n250 2.0.0 queued as 1234\r\n221 bye\r\n",
        "421 4.3.2 shutting down\r\n", "550-5.1.1 no such user\r\n550 5.1.1 really\r\n", "250\r\n",
        "25O oops\r\n", "250-a\r\n251 b\r\n", "220 partial", "250-\n250 \n",
    ]):
        write("smtp-reply", f"reply-{i:02d}", bytes([i * 37 % 256]) + s.encode())
    # HTTP requests: method (GET POST PUT DELETE PATCH HEAD OPTIONS), credential (none, forged, analyst-fr, partner-fr,
    # analyst-be, partner-be, auditor-1, admin-1), then the path, header lines, a blank line and the body.
    yaml_list = read("Watchlists/be-fedpol/returning-fighters.yaml").decode()
    requests = [
        (0, 6, "/v1/watchlists", ""), (0, 6, "/v1/watchlists/fr-dgsi/contacts", ""),
        (0, 5, "/v1/watchlists/fr-dgsi/contacts/versions", ""), (3, 5, "/v1/watchlists/fr-dgsi/contacts", ""),
        (2, 5, "/v1/watchlists/be-fedpol/returning-fighters\nContent-Type: application/yaml", yaml_list),
        (2, 3, "/v1/watchlists/fr-dgsi/contacts\nContent-Type: application/yaml", "watchlist: contacts\nowner: fr-dgsi\n"),
        (0, 4, "/v1/alerts?state=firing&limit=5", ""), (0, 4, "/v1/alerts?cursor=99999999999999999999", ""),
        (1, 4, "/v1/alerts/al_0123/ack\nTripline-Reason: on it", ""), (0, 4, "/v1/alerts/%00", ""),
        (1, 7, "/v1/silences\nContent-Type: application/json\nTripline-Reason: maintenance",
         '{"matchers":["owner=\\"fr-dgsi\\""],"ends_at":"2031-01-01T00:00:00Z","comment":"x"}'),
        (0, 6, "/v1/outbox?limit=1", ""), (1, 7, "/v1/outbox/ob_1/retry", ""), (1, 7, "/v1/receivers/ops-oncall/enable", ""),
        (0, 6, "/v1/audit/records?from=0&to=10", ""), (0, 6, "/v1/audit/checkpoint", ""),
        (0, 6, "/v1/audit/proof/inclusion?index=0&size=1", ""), (0, 6, "/v1/audit/proof/consistency?old=1&new=2", ""),
        (1, 6, "/v1/audit/exports\nContent-Type: application/json", '{"from":"2026-01-01T00:00:00Z"}'),
        (1, 7, "/v1/tokens\nContent-Type: application/json", '{"principal":"analyst-be","expires_in":"1d"}'),
        (0, 7, "/v1/tokens", ""), (3, 7, "/v1/tokens/tok_0", ""), (0, 0, "/healthz", ""), (0, 0, "/v1/alerts", ""),
        (0, 1, "/metrics", ""), (0, 0x82, "/v1/alerts", ""), (1, 7, "/-/reload", ""), (0, 2, "/v1/openapi.json", ""),
        (1, 2, "/v1/selectors\nContent-Type: application/x-ndjson", b"\n".join(samples[:4]).decode()),
    ]
    for i, (m, who, head, body) in enumerate(requests):
        write("http", f"request-{i:02d}", bytes([m, who]) + head.encode() + b"\n\n" + body.encode())


if __name__ == "__main__":
    sys.exit(main())
