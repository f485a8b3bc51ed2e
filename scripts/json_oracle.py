#!/usr/bin/env python3
"""The JSON differential's oracle: Python's json, made as strict as RFC 8259 and Tripline's parser (SPEC §2):
NaN and Infinity refused (parse_constant), duplicate member names refused (object_pairs_hook), lone surrogates
refused (checked after parsing: json accepts "\\ud800"), nesting deeper than 64 refused (Tripline's documented
limit), integers of any length. Reads file paths on stdin, one per line; prints per file "ok", "reject: reason",
or "skip" (not UTF-8: only valid UTF-8 is compared)."""
import json
import sys

MAX_DEPTH = 64


def reject_constant(name):
    raise ValueError(f"constant {name}")


def no_duplicates(pairs):
    seen = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"duplicate member {k!r}")
        seen.add(k)
    return dict(pairs)


def check(v, depth=0):
    if isinstance(v, (dict, list)):
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError("nesting deeper than 64")
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            if isinstance(k, str):
                check(k, depth)
            check(x, depth)
    elif isinstance(v, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
            raise ValueError("lone surrogate")


def main():
    sys.set_int_max_str_digits(0)
    sys.setrecursionlimit(100000)
    for path in sys.stdin.read().splitlines():
        data = open(path, "rb").read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            print("skip")
            continue
        try:
            check(json.loads(text, parse_constant=reject_constant, object_pairs_hook=no_duplicates))
            print("ok")
        except (ValueError, RecursionError) as e:
            print("reject: " + str(e).replace("\n", " ")[:200])


if __name__ == "__main__":
    main()
