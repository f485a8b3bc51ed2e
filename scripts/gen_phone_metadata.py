#!/usr/bin/env python3
"""Generate Tripline's phone numbering-plan resources from libphonenumber's public metadata.

Source: the `phonenumbers` PyPI package (a Python port of Google's libphonenumber, Apache-2.0),
version pinned in scripts/requirements-peers.txt.  This script reads its metadata objects and
writes two compact text resources that the product ships; no Python runs at run time.

  phonemeta.tsv  country calling codes, per-region parsing data (international and national
                 prefixes, the national-prefix parsing rule) and, per region, one minimised DFA over
                 the digits 0-9 that recognises every number-type pattern at once (the accepting
                 state carries a bit mask of the types whose pattern fully matches).
  phonegeo.tsv   English geographic descriptions by number prefix, kept only where a fixed line can
                 start with the prefix and where it differs from its parent prefix.

Usage: python3 scripts/gen_phone_metadata.py OUTDIR
"""

import sys
import os
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import sre_parse  # noqa: E402  (deprecated alias, still the public parser of `re` patterns)
import sre_constants as C  # noqa: E402

import phonenumbers  # noqa: E402
from phonenumbers import PhoneMetadata  # noqa: E402

# Bit order of the type mask. Must match PhoneType in Sources/TriplineSelectors/Phone*.swift.
TYPES = [
    "general_desc", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line", "mobile",
]


# ---------------------------------------------------------------- regex -> NFA -> DFA
class NFA:
    def __init__(self):
        self.eps = []   # state -> list of states
        self.edges = []  # state -> list of (digitset, state)

    def new(self):
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1


def charset(op, av):
    if op == C.LITERAL:
        return frozenset([chr(av)]) & DIGITS
    if op == C.IN:
        out = set()
        neg = False
        for o, a in av:
            if o == C.LITERAL:
                out.add(chr(a))
            elif o == C.RANGE:
                out.update(chr(c) for c in range(a[0], a[1] + 1))
            elif o == C.CATEGORY and a == C.CATEGORY_DIGIT:
                out.update(DIGITS)
            elif o == C.NEGATE:
                neg = True
            else:
                raise ValueError("unsupported class item %r" % ((o, a),))
        s = frozenset(out) & DIGITS
        return DIGITS - s if neg else s
    if op == C.ANY:
        return DIGITS
    raise ValueError("not a charset %r" % op)


DIGITS = frozenset("0123456789")


def build(nfa, seq, start):
    """Thompson construction for a parsed sequence; returns the end state."""
    cur = start
    for op, av in seq:
        if op in (C.LITERAL, C.IN, C.ANY):
            nxt = nfa.new()
            nfa.edges[cur].append((charset(op, av), nxt))
            cur = nxt
        elif op == C.SUBPATTERN:
            cur = build(nfa, av[-1], cur)
        elif op == C.BRANCH:
            end = nfa.new()
            for alt in av[1]:
                s = nfa.new()
                nfa.eps[cur].append(s)
                e = build(nfa, alt, s)
                nfa.eps[e].append(end)
            cur = end
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, sub = av
            for _ in range(lo):
                cur = build(nfa, sub, cur)
            if hi == C.MAXREPEAT:
                loop = nfa.new()
                nfa.eps[cur].append(loop)
                e = build(nfa, sub, loop)
                nfa.eps[e].append(loop)
                cur = loop
            else:
                end = nfa.new()
                nfa.eps[cur].append(end)
                for _ in range(hi - lo):
                    cur = build(nfa, sub, cur)
                    nfa.eps[cur].append(end)
                cur = end
        else:
            raise ValueError("unsupported regex op %r" % op)
    return cur


def closure(nfa, states):
    stack = list(states)
    seen = set(states)
    while stack:
        s = stack.pop()
        for t in nfa.eps[s]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return frozenset(seen)


def dfa_for(patterns):
    """patterns: list of (bit, regex). Returns (trans, accept): trans[state][d] = next or -1."""
    nfa = NFA()
    start = nfa.new()
    accepts = {}
    for bit, pat in patterns:
        s = nfa.new()
        nfa.eps[start].append(s)
        e = build(nfa, sre_parse.parse(pat), s)
        accepts.setdefault(e, 0)
        accepts[e] |= 1 << bit
    init = closure(nfa, [start])
    index = {init: 0}
    order = [init]
    trans = []
    acc = []
    i = 0
    while i < len(order):
        S = order[i]
        i += 1
        row = []
        for d in "0123456789":
            T = set()
            for s in S:
                for cs, t in nfa.edges[s]:
                    if d in cs:
                        T.add(t)
            if not T:
                row.append(-1)
                continue
            T = closure(nfa, T)
            if T not in index:
                index[T] = len(order)
                order.append(T)
            row.append(index[T])
        trans.append(row)
        m = 0
        for s in S:
            m |= accepts.get(s, 0)
        acc.append(m)
    return minimise(trans, acc)


def minimise(trans, acc):
    """Moore partition refinement; dead state is -1 throughout."""
    n = len(trans)
    block = list(acc)
    while True:
        sig = {}
        newblock = []
        for s in range(n):
            key = (block[s],) + tuple(block[t] if t >= 0 else None for t in trans[s])
            newblock.append(sig.setdefault(key, len(sig)))
        if len(sig) == len(set(block)):
            block = newblock
            break
        block = newblock
    # renumber so that the start state's block is 0, in BFS order
    mapping = {block[0]: 0}
    rep = {0: 0}
    queue = [0]
    while queue:
        s = queue.pop(0)
        for t in trans[s]:
            if t >= 0 and block[t] not in mapping:
                mapping[block[t]] = len(mapping)
                rep[mapping[block[t]]] = t
                queue.append(t)
    out_t = []
    out_a = []
    for k in range(len(mapping)):
        s = rep[k]
        out_t.append([mapping[block[t]] if t >= 0 else -1 for t in trans[s]])
        out_a.append(acc[s])
    return out_t, out_a


def enc_dfa(trans, acc):
    # one state per ';'-separated item: ten transitions (empty = none) then ':' and the mask in hex
    parts = []
    for row, m in zip(trans, acc):
        parts.append(",".join("" if t < 0 else str(t) for t in row) + ":" + format(m, "x"))
    return ";".join(parts)


def lengths_mask(desc):
    """-1: no numbers of this type; 0: no length constraint; else bit mask of lengths."""
    if desc is None or not desc.national_number_pattern:
        return -1
    pl = desc.possible_length
    if pl is None or len(pl) == 0:
        return 0
    if tuple(pl) == (-1,):
        return -1
    m = 0
    for x in pl:
        m |= 1 << x
    return m


def opt(s):
    return "-" if s is None or s == "" else s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Sources/TriplineSelectors/Resources"
    ver = phonenumbers.__version__
    meta_lines = [
        "# Tripline phone numbering-plan data, generated by scripts/gen_phone_metadata.py",
        "# from the metadata of the phonenumbers PyPI package %s (libphonenumber, Apache-2.0)." % ver,
        "# Do not edit by hand; regenerate with `make phonedata`.",
        "V\t%s" % ver,
    ]
    for cc in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        meta_lines.append("C\t%d\t%s" % (cc, ",".join(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc])))
    entries = []
    for r in sorted(phonenumbers.SUPPORTED_REGIONS):
        entries.append((r, PhoneMetadata.metadata_for_region(r)))
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        entries.append(("001/%d" % cc, PhoneMetadata.metadata_for_nongeo_region(cc)))
    fixed_dfas = {}
    total_states = 0
    for key, m in entries:
        pats = []
        masks = []
        for bit, t in enumerate(TYPES):
            d = getattr(m, t)
            masks.append(lengths_mask(d))
            if d is not None and d.national_number_pattern and lengths_mask(d) != -1:
                pats.append((bit, d.national_number_pattern))
        trans, acc = dfa_for(pats)
        total_states += len(trans)
        fixed_dfas[m.country_code] = fixed_dfas.get(m.country_code, []) + [(trans, acc)]
        lead = "-"
        if m.leading_digits:
            lt, la = dfa_for([(0, m.leading_digits)])
            lead = enc_dfa(lt, la)
        gl = m.general_desc.possible_length_local_only or ()
        local = 0
        for x in gl:
            if x >= 0:
                local |= 1 << x
        npfp = m.national_prefix_for_parsing
        if npfp is None and m.national_prefix:
            npfp = m.national_prefix
        same = 1 if m.same_mobile_and_fixed_line_pattern else 0
        meta_lines.append("\t".join([
            "R", key, str(m.country_code), opt(m.international_prefix),
            opt(m.preferred_international_prefix), opt(m.national_prefix), opt(npfp),
            opt(m.national_prefix_transform_rule), str(same), format(local, "x"),
            ",".join(str(x) for x in masks), lead, enc_dfa(trans, acc),
        ]))
    with open(os.path.join(out, "phonemeta.tsv"), "w") as f:
        f.write("\n".join(meta_lines) + "\n")

    # geography: keep English descriptions for prefixes a fixed line (or fixed-or-mobile) can start with
    from phonenumbers.geodata import GEOCODE_DATA
    en = {k: v["en"] for k, v in GEOCODE_DATA.items() if "en" in v}
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "phonegeo-supplement.tsv"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            prefix, area = line.rstrip("\n").split("\t")
            if not any(k.startswith(prefix[:len(k)]) and prefix.startswith(k) for k in en if len(k) <= len(prefix)):
                en[prefix] = area
    FIXED = 1 << TYPES.index("fixed_line")

    def live_fixed(trans, acc):
        # states from which a fixed-line accept is reachable
        n = len(trans)
        good = [bool(acc[s] & FIXED) for s in range(n)]
        changed = True
        while changed:
            changed = False
            for s in range(n):
                if not good[s] and any(t >= 0 and good[t] for t in trans[s]):
                    good[s] = True
                    changed = True
        return good

    live = {cc: [(t, a, live_fixed(t, a)) for t, a in lst] for cc, lst in fixed_dfas.items()}

    def fixed_can_start(prefix):
        for n in (1, 2, 3):
            cc = int(prefix[:n])
            if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE and cc in live:
                rest = prefix[n:]
                for trans, acc, good in live[cc]:
                    s = 0
                    for ch in rest:
                        s = trans[s][ord(ch) - 48]
                        if s < 0:
                            break
                    if s >= 0 and good[s]:
                        return True
                return False
        return False

    def parent(k):
        for i in range(len(k) - 1, 0, -1):
            if k[:i] in en:
                return k[:i]
        return None

    kept = {}
    for k in sorted(en, key=len):
        if not fixed_can_start(k):
            continue
        p = parent(k)
        # drop a prefix that says what its nearest kept ancestor already says
        while p is not None and p not in kept:
            p = parent(p)
        if p is not None and kept[p] == en[k]:
            continue
        kept[k] = en[k]
    names = sorted(set(kept.values()))
    idx = {n: i for i, n in enumerate(names)}
    geo = [
        "# Tripline phone area data, generated by scripts/gen_phone_metadata.py from the English",
        "# geocoding data of the phonenumbers PyPI package %s (libphonenumber, Apache-2.0)." % ver,
        "# N lines: area names; P lines: country-code-and-number prefix, index of its name.",
        "V\t%s" % ver,
    ]
    geo += ["N\t" + n for n in names]
    geo += ["P\t%s\t%d" % (k, idx[v]) for k, v in sorted(kept.items())]
    with open(os.path.join(out, "phonegeo.tsv"), "w") as f:
        f.write("\n".join(geo) + "\n")
    print("regions %d, dfa states %d, geo prefixes %d of %d, names %d"
          % (len(entries), total_states, len(kept), len(en), len(names)))


if __name__ == "__main__":
    main()
