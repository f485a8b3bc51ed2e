#!/usr/bin/env python3
"""Generates one watchlist file of N entries (issue 17, item 3): 70% phones (valid E.164 mobiles of BE, FR, DE, NL), 30% e-mails, all distinct,
fixed seed. Usage: gen_list.py N OUT.yaml [OWNER]"""
import random, sys

n = int(sys.argv[1])
out = sys.argv[2]
owner = sys.argv[3] if len(sys.argv) > 3 else "be-fedpol"
rng = random.Random(20261201)
with open(out, "w") as f:
    f.write(f"watchlist: big\nowner: {owner}\nhandling: {{tlp: amber}}\nreview_by: 2099-01-01\n"
            "default_priority: high\nentries:\n")
    for i in range(n):
        if rng.random() < 0.7:
            # Valid mobile numbers, each once: the prefix by i, the subscriber digits a permutation of i // 4.
            cc = ("32470", "33612", "4915112", "31612")[i % 4]
            value = f"+{cc}{(i // 4) * 7919 % 10 ** 6:06d}"
            f.write(f'  - {{ref: E{i}, selectors: [{{type: phone, value: "{value}"}}]}}\n')
        else:
            f.write(f"  - {{ref: E{i}, selectors: [{{type: email, value: u{i}.{rng.randrange(10 ** 6)}@example.org}}]}}\n")
