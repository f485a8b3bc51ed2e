#!/usr/bin/env python3
"""Generates the rules mix of the throughput issue (fixed seed): exact values, `contains` literals and regexes
with a literal core, over short e-mail and handle selectors, about 1% of which are built to hit one rule.

    gen_rules.py DIR [COUNTS=1000,5000,10000] [SELECTORS=100000] [SEED=17] [LITERAL_MIN=5]

Writes, for each count N:
    DIR/rules-N.yml      Sigma rules (one per pattern), read by Tripline
    DIR/patterns-N.tsv   rule index <TAB> kind <TAB> PCRE, the same patterns for python-hyperscan
and once:
    DIR/selectors.tsv    type <TAB> value (values already in the normalised form: lower case, platform-qualified)

The mix per 10 rules: 3 exact values, 3 `contains` literals, 1 of each regex shape:
    ^[a-z]+:[a-z]+LIT$      (the issue's ^[a-z]+LIT$, on a platform-qualified handle)
    (?:LIT|LITx)[a-z]{2}\\.
    LIT[._-]?\\d+
    ^LIT[0-9]{2,4}@
Literals are pronounceable LITERAL_MIN..8 letter words from the same syllables as the selectors' names, so that many
selectors share 4-grams with many literals (the prefilter's hard case), not random letters that never collide.
With 5-letter literals about 1.3% (1,000 rules) to 4% (10,000 rules) of the selectors meet a rule; with 4, 8 to 28%
(the test suite uses 4: more hits to compare with hyperscan).
"""
import os
import random
import sys

SYLLABLES = [c + v for c in "bdfghjklmnprstvz" for v in "aeiou"] + ["sh" + v for v in "aeiou"] + ["al", "el", "an", "or"]
DOMAINS = ["mail.be", "post.fr", "web.de", "inbox.lv", "proton.me", "mail.ru", "yandex.ru", "outlook.com",
           "example.org", "libero.it"]
PLATFORMS = ["telegram", "signal", "x", "instagram"]
LITERAL_MIN = 5


def word(rng, lo, hi):
    """A pronounceable word of lo..hi letters."""
    target = rng.randint(lo, hi)
    w = ""
    while len(w) < target:
        w += rng.choice(SYLLABLES)
    return w[:target]


def selector(rng):
    if rng.random() < 0.5:
        local = word(rng, 3, 7) + rng.choice(["", ".", "_", ""]) + word(rng, 3, 7)
        if rng.random() < 0.5:
            local += str(rng.randint(0, 9999))
        return "email", local + "@" + rng.choice(DOMAINS)
    handle = word(rng, 4, 9) + rng.choice(["", "_", ""]) + (str(rng.randint(0, 999)) if rng.random() < 0.5 else "")
    return "username", rng.choice(PLATFORMS) + ":" + handle


def rule(rng, i, literals, literal_min):
    """(kind, pcre for hyperscan, sigma detection line, a value that hits it)."""
    lit = word(rng, literal_min, 8)
    while lit in literals:
        lit = word(rng, literal_min, 8)
    literals.add(lit)
    k = i % 10
    if k < 3:
        if k % 2 == 0:
            v = lit + str(rng.randint(0, 99)) + "@" + rng.choice(DOMAINS)
            return "exact", "^" + v.replace(".", "\\.") + "$", "value: '%s'" % v, ("email", v)
        v = rng.choice(PLATFORMS) + ":" + lit + "_" + str(rng.randint(0, 99))
        return "exact", "^" + v + "$", "value: '%s'" % v, ("username", v)
    if k < 6:
        return "contains", lit, "value|contains: '%s'" % lit, ("email", word(rng, 3, 5) + lit + "@" + rng.choice(DOMAINS))
    if k == 6:
        p = "^[a-z]+:[a-z]+" + lit + "$"
        return "regex", p, "value|re: '%s'" % p, ("username", "telegram:" + word(rng, 2, 4) + lit)
    if k == 7:
        p = "(?:%s|%sx)[a-z]{2}\\." % (lit, lit)
        return "regex", p, "value|re: '%s'" % p, ("email", lit + "ab.cd@" + rng.choice(DOMAINS))
    if k == 8:
        p = lit + "[._-]?\\d+"
        return "regex", p, "value|re: '%s'" % p, ("username", "signal:" + lit + "_" + str(rng.randint(0, 999)))
    p = "^" + lit + "[0-9]{2,4}@"
    return "regex", p, "value|re: '%s'" % p, ("email", lit + str(rng.randint(10, 9999)) + "@" + rng.choice(DOMAINS))


def main():
    out = sys.argv[1]
    counts = [int(c) for c in (sys.argv[2] if len(sys.argv) > 2 else "1000,5000,10000").split(",")]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 17
    literal_min = int(sys.argv[5]) if len(sys.argv) > 5 else LITERAL_MIN
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    # One sequence of rules: the 1,000-rule set is a prefix of the 5,000-rule set, and so on.
    literals = set()
    rules = [rule(rng, i, literals, literal_min) for i in range(max(counts))]
    for count in counts:
        with open(os.path.join(out, "rules-%d.yml" % count), "w") as y, \
                open(os.path.join(out, "patterns-%d.tsv" % count), "w") as t:
            for i, (kind, pcre, sigma, _) in enumerate(rules[:count]):
                if i:
                    y.write("---\n")
                y.write("title: Mix %d\nid: mix-%d\nlogsource: {product: tripline, category: selector}\n"
                        "level: medium\ndetection:\n  sel:\n    %s\n  condition: sel\n" % (i, i, sigma))
                t.write("%d\t%s\t%s\n" % (i, kind, pcre))
    # Hits are drawn from the smallest set's rules so that every set sees the same 1%.
    smallest = min(counts)
    with open(os.path.join(out, "selectors.tsv"), "w") as f:
        for k in range(n):
            if k % 100 == 0:
                t, v = rules[rng.randrange(smallest)][3]
            else:
                t, v = selector(rng)
            f.write("%s\t%s\n" % (t, v))


if __name__ == "__main__":
    main()
