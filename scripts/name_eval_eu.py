#!/usr/bin/env python3
"""Name-matching evaluation data from the EU consolidated sanctions list (issue 19): a second evaluation, built
apart from the UN one (scripts/name_eval.py) and not used to tune the matcher.

  name_eval_eu.py persons JSONL          one JSON line per person: id, names (the primary name first, then the
                                         aliases, as the list writes them)
  name_eval_eu.py aliases JSONL          spelling aliases as queries: person id <TAB> name index <TAB> alias — each
                                         alias whose rapidfuzz token_sort_ratio (default_process: lower case, no
                                         punctuation) with the primary name is >= 60 (the same name spelt otherwise,
                                         not a nickname); the query must find its person through another of its names
  name_eval_eu.py variants JSONL [SEED]  seeded variants of listed names, kind <TAB> query <TAB> person id: order
                                         swapped, a middle name dropped, given names and particles re-spelled, one
                                         typo in the longest name, re-spelling and a typo together (240 of each)
  name_eval_eu.py negatives JSONL OUT [COUNT] [SEED]
                                         (run once; the output is committed) names from Faker in several locales,
                                         each kept only if its token_sort_ratio with every listed name and alias
                                         is < 70

The variant generator is written independently of the UN one: its re-spellings are rules over letters (vowel
and consonant renderings of Arabic, Persian, Turkic and Slavic names in French, English, German and Turkish
romanisation) and particle renderings, not a table of names. Needs rapidfuzz (pinned in
scripts/requirements-peers.txt); negatives also Faker (faker==40.63.0, only for regenerating the committed file).
"""
import json, random, re, sys


def persons(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            names = [o["name"]] + [a for a in o.get("aliases", []) if a and a != o["name"]]
            seen, uniq = set(), []
            for n in names:
                if n.strip() and n not in seen:
                    seen.add(n)
                    uniq.append(n)
            out.append({"id": o["id"], "names": uniq})
    return out


def aliases(path):
    from rapidfuzz import fuzz, utils
    for p in persons(path):
        primary = p["names"][0]
        for k, a in enumerate(p["names"][1:], start=1):
            if fuzz.token_sort_ratio(primary, a, processor=utils.default_process) >= 60:
                yield p["id"], k, a


def tokens(name):
    return [t for t in re.split(r"\s+", name.strip()) if t]


def latin(s):
    return all(ord(c) < 0x250 or not c.isalpha() for c in s)


# Particles and how else they are written: glued, split, hyphenated, another vowel.
PARTICLE_FORMS = {"al": ["el", "al", "Al"], "el": ["al", "El"], "ul": ["al", "el"], "abu": ["abou", "abo"],
                  "abou": ["abu"], "bin": ["ben", "ibn"], "ben": ["bin", "ibn"], "ibn": ["bin", "ben"],
                  "abd": ["abdul", "abdel", "abd al"], "abdel": ["abd al", "abdul", "abd el"],
                  "abdul": ["abdel", "abd al", "abd-ul"], "bint": ["bent"], "ould": ["uld", "wald"]}

# Letter rules: how one sound is romanised in one language and another (each rule both ways where it reads so).
RULES = [("ou", "u"), ("u", "ou"), ("oo", "u"), ("ee", "i"), ("i", "ee"), ("ai", "ay"), ("ay", "ai"), ("ei", "ay"),
         ("y", "i"), ("i", "y"), ("ie", "i"), ("kh", "h"), ("q", "k"), ("k", "q"), ("dh", "z"), ("th", "s"),
         ("ph", "f"), ("sh", "ch"), ("ch", "sh"), ("j", "dj"), ("dj", "j"), ("zh", "j"), ("ss", "s"), ("s", "ss"),
         ("mm", "m"), ("m", "mm"), ("dd", "d"), ("ll", "l"), ("rr", "r"), ("tt", "t"), ("nn", "n"), ("a", "e"),
         ("e", "a"), ("o", "u"), ("u", "o"), ("w", "ou"), ("v", "w"), ("ia", "iya"), ("iya", "ia"), ("ij", "iy"),
         ("aa", "a"), ("x", "ks"), ("yu", "iou"), ("ya", "ia"), ("kh", "ch"), ("ts", "tz")]
END_RULES = [("d", "t"), ("ad", "et"), ("ah", "a"), ("a", "ah"), ("iy", "y"), ("y", "iy"), ("ov", "off"),
             ("ev", "eff"), ("in", "ine"), ("ine", "in")]


def respell_word(w, rng):
    low = w.lower()
    for _ in range(12):
        if rng.random() < 0.3:
            cands = [(a, b) for a, b in END_RULES if low.endswith(a) and len(low) > len(a) + 2]
            if cands:
                a, b = rng.choice(cands)
                new = low[: len(low) - len(a)] + b
                if new != low:
                    return recase(new, w)
        cands = [(a, b) for a, b in RULES if a in low[1:]]
        if not cands:
            continue
        a, b = rng.choice(cands)
        spots = [m.start() for m in re.finditer(re.escape(a), low) if m.start() > 0]
        if not spots:
            continue
        i = rng.choice(spots)
        new = low[:i] + b + low[i + len(a):]
        if new != low:
            return recase(new, w)
    return None


def recase(new, like):
    if like.isupper():
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def particle_variant(toks, rng):
    """A particle written otherwise: `Al-Shami` -> `AlShami` / `Al Shami` / `el-Shami`, `Abd al-Aziz` -> `Abdel Aziz`."""
    out = list(toks)
    for i, t in enumerate(toks):
        m = re.match(r"^([A-Za-z]+)-(.+)$", t)
        if m and m.group(1).lower() in set(PARTICLE_FORMS) | {"ad", "ar", "as", "ash", "at", "az"}:
            p, rest = m.group(1), m.group(2)
            choice = rng.randrange(3)
            if choice == 0:
                out[i] = p + rest
            elif choice == 1:
                out[i] = p + " " + rest
            else:
                forms = PARTICLE_FORMS.get(p.lower(), [p])
                out[i] = recase(rng.choice(forms), p) + "-" + rest
            return out
        if t.lower() in PARTICLE_FORMS:
            out[i] = recase(rng.choice(PARTICLE_FORMS[t.lower()]), t)
            return out
    return None


def respell(toks, rng):
    """Re-spells given names (every token but the last) and particles; one or two changes."""
    out = list(toks)
    changed = 0
    if rng.random() < 0.5:
        p = particle_variant(out, rng)
        if p:
            out = p
            changed += 1
    given = [i for i, t in enumerate(out[:-1]) if len(t) >= 3 and t.isalpha()] or \
            [i for i, t in enumerate(out) if len(t) >= 4 and t.isalpha()]
    rng.shuffle(given)
    for i in given[: 2 - changed if changed else rng.choice([1, 2])]:
        w = respell_word(out[i], rng)
        if w:
            out[i] = w
            changed += 1
    return out if changed and out != toks else None


def typo(toks, rng):
    """One typo in the longest name: two neighbouring letters swapped, or a letter dropped (not the first)."""
    out = list(toks)
    i = max(range(len(out)), key=lambda k: (len(out[k]), -k))
    w = out[i]
    if len(w) < 4:
        return None
    if rng.random() < 0.5:
        j = rng.randrange(1, len(w) - 1)
        if w[j] == w[j + 1]:
            return None
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    else:
        j = rng.randrange(1, len(w))
        w = w[:j] + w[j + 1:]
    out[i] = w
    return out


def case(toks, rng):
    r = rng.random()
    if r < 0.25:
        return [t.upper() for t in toks]
    if r < 0.4:
        return [t.lower() for t in toks]
    return toks


def variants(path, seed, per_kind=240):
    rng = random.Random(seed)
    people = [p for p in persons(path) if latin(p["names"][0]) and len(tokens(p["names"][0])) >= 2]
    kinds = ["order", "middle-dropped", "respelled", "typo", "respelled+typo"]
    out = []
    for kind in kinds:
        made, tries = 0, 0
        while made < per_kind and tries < per_kind * 50:
            tries += 1
            p = rng.choice(people)
            toks = tokens(rng.choice([n for n in p["names"] if latin(n)][:3]))
            if len(toks) < 2:
                continue
            if kind == "order":
                q = [toks[-1].upper() + ","] + toks[:-1]
            elif kind == "middle-dropped":
                if len(toks) < 3:
                    continue
                k = rng.randrange(1, len(toks) - 1)
                q = toks[:k] + toks[k + 1:]
            elif kind == "respelled":
                q = respell(toks, rng)
            elif kind == "typo":
                q = typo(toks, rng)
            else:
                r = respell(toks, rng)
                q = typo(r, rng) if r else None
            if not q:
                continue
            out.append((kind, " ".join(case(q, rng)), p["id"]))
            made += 1
    return out


LOCALES = ["ar_AA", "ar_SA", "fa_IR", "tr_TR", "az_AZ", "ru_RU", "uk_UA", "fr_FR", "de_DE", "en_GB", "es_ES", "it_IT",
           "nl_NL", "pl_PL", "hi_IN", "id_ID"]


def negatives(path, out_path, count=12000, seed=20261201):
    from faker import Faker
    from rapidfuzz import fuzz, process, utils
    listed = [utils.default_process(n) for p in persons(path) for n in p["names"]]
    fakers = [Faker(loc) for loc in LOCALES]
    for k, f in enumerate(fakers):
        f.seed_instance(seed + k)
    rng = random.Random(seed)
    cands, seen = [], set()
    while len(cands) < count * 2:
        f = rng.choice(fakers)
        n = f.name() if rng.random() < 0.5 else f"{f.first_name()} {f.last_name()}"
        if n not in seen:
            seen.add(n)
            cands.append(n)
    kept = []
    for i in range(0, len(cands), 1000):
        chunk = cands[i:i + 1000]
        m = process.cdist([utils.default_process(c) for c in chunk], listed, scorer=fuzz.token_sort_ratio,
                          workers=-1, dtype="uint8")
        for c, row in zip(chunk, m.max(axis=1)):
            if row < 70:
                kept.append(c)
        if len(kept) >= count:
            break
    with open(out_path, "w", encoding="utf-8") as o:
        o.write("# Names not on the EU consolidated list (2026-01-28), for the name evaluation (issue 19): Faker "
                f"40.63.0, locales {', '.join(LOCALES)}, seed {seed}; each kept only if its rapidfuzz (3.14.6) "
                "token_sort_ratio (default_process) with every listed name and alias is < 70. "
                "Made by scripts/name_eval_eu.py negatives.\n")
        for n in kept[:count]:
            o.write(n + "\n")


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "persons":
        for p in persons(path):
            print(json.dumps(p, ensure_ascii=False))
    elif cmd == "aliases":
        for pid, k, a in aliases(path):
            print(f"{pid}\t{k}\t{a}")
    elif cmd == "variants":
        for kind, q, pid in variants(path, int(sys.argv[3]) if len(sys.argv) > 3 else 20261201):
            print(f"{kind}\t{q}\t{pid}")
    elif cmd == "negatives":
        negatives(path, sys.argv[3], *(int(a) for a in sys.argv[4:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
