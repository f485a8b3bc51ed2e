#!/usr/bin/env python3
"""The throughput workload of issue 17 (fixed seed): watchlists of P phones, E e-mails and X phone prefixes split over
several files, a configuration, and a stream of N selectors, 60% phone numbers in international written forms and 40%
e-mail addresses, about 1% of them on a list.

Usage: gen_stream.py DIR [N] [P] [E] [X] [FILES] [HIT_RATE]   (defaults: 1000000 500000 200000 20000 15 0.01)
Writes DIR/tripline.yaml, DIR/Watchlists/be-fedpol/*.yaml, DIR/Rules/, DIR/stream.ndjson, DIR/empty.ndjson."""
import os, random, sys

d = sys.argv[1]
args = sys.argv[2:] + ["1000000", "500000", "200000", "20000", "15", "0.01"][len(sys.argv) - 2:]
n, phones, emails, prefixes, files = (int(a) for a in args[:5])
hit_rate = float(args[5])
rng = random.Random(20261201)
os.makedirs(f"{d}/Watchlists/be-fedpol", exist_ok=True)
os.makedirs(f"{d}/Rules", exist_ok=True)

# Mobile ranges whose every number is valid (checked with the phonenumbers package): country code, national prefix, subscriber digits after it.
MOBILE = [("32", "47", 7), ("33", "61", 7), ("49", "151", 8), ("31", "61", 7), ("964", "780", 7), ("44", "74", 8)]


def phone(rng):
    cc, pre, k = rng.choice(MOBILE)
    return cc, pre + "".join(rng.choice("0123456789") for _ in range(k))


def written(cc, nat, rng):
    """An international written form of +cc nat: spaces, dashes, dots, 00 or +."""
    form = rng.randrange(5)
    if form == 0:
        return f"+{cc}{nat}"
    if form == 1:
        return f"00{cc}{nat}"
    groups = [nat[:3]] + [nat[i:i + 2] for i in range(3, len(nat), 2)]
    sep = {2: " ", 3: "-", 4: "."}[form]
    return f"+{cc}" + sep + sep.join(groups)


def email(rng, i):
    user = rng.choice(["j.doe", "contact", "info", "m.smith", "ahmed", "k.ivanov", "x"]) + str(rng.randrange(10 ** 7))
    return f"{user}.{i}@" + rng.choice(["example.org", "mail.example", "proton.example", "gmx.example"])


listed_phones = set()
while len(listed_phones) < phones:
    listed_phones.add(phone(rng))
listed_set = listed_phones
listed_phones = sorted(listed_phones)
rng.shuffle(listed_phones)
listed_emails = [email(rng, i) for i in range(emails)]
listed_prefixes = set()
while len(listed_prefixes) < prefixes:
    # Prefixes inside the Iraqi mobile range +964 77x: 4-5 digits after 77, so a random number rarely falls in one.
    listed_prefixes.add(("964", "77" + "".join(rng.choice("0123456789") for _ in range(rng.choice((4, 5))))))
listed_prefixes = sorted(listed_prefixes)

entries = [("phone", f"+{cc}{nat}") for cc, nat in listed_phones] + [("email", e) for e in listed_emails] + \
    [("phone_prefix", f"+{cc} {nat}") for cc, nat in listed_prefixes]
per = (len(entries) + files - 1) // files
for f in range(files):
    with open(f"{d}/Watchlists/be-fedpol/list{f:02d}.yaml", "w") as out:
        out.write(f"watchlist: list{f:02d}\nowner: be-fedpol\nhandling: {{tlp: amber}}\nreview_by: 2099-01-01\n"
                  "default_priority: high\nentries:\n")
        for i in range(f * per, min(len(entries), (f + 1) * per)):
            t, v = entries[i]
            out.write(f'  - {{ref: E{i}, selectors: [{{type: {t}, value: "{v}"}}]}}\n')

with open(f"{d}/tripline.yaml", "w") as out:
    out.write("""rules: Rules
watchlists: Watchlists
default_region: BE
state: state/state.sqlite
operator: ops
partners:
  - {id: ops, name: Ops, countries: [], contact: ops@example}
  - {id: be-fedpol, name: BE, countries: [BE], contact: be@example}
receivers:
  - {name: log, partner: be-fedpol, file_configs: [{path: alerts.ndjson}]}
route: {receiver: log, group_by: [owner, list, item], group_wait: 0s, group_interval: 1ms, repeat_interval: 100h}
""")

# The stream: HIT_RATE hits (half phones on the list, a third e-mails on the list, the rest numbers under a prefix).
with open(f"{d}/stream.ndjson", "w") as out:
    for i in range(n):
        hit = rng.random() < hit_rate
        r = rng.random()
        if hit and r < 0.5:
            cc, nat = rng.choice(listed_phones)
            t, v = "phone", written(cc, nat, rng)
        elif hit and r < 0.83:
            t, v = "email", rng.choice(listed_emails)
            if rng.random() < 0.5:
                v = v.upper()
        elif hit:
            cc, nat = rng.choice(listed_prefixes)
            t, v = "phone", written(cc, nat + "".join(rng.choice("0123456789") for _ in range(9 - len(nat))), rng)
        elif r < 0.6:
            cc, nat = phone(rng)
            while (cc, nat) in listed_set:
                cc, nat = phone(rng)
            t, v = "phone", written(cc, nat, rng)
        else:
            t, v = "email", email(rng, n + i)
        out.write(f'{{"id":"s{i}","type":"{t}","value":"{v}","observed_at":"2026-11-02T10:{i // 60 % 60:02d}:{i % 60:02d}Z",'
                  f'"source":{{"item":"D{i // 5000}","operation":"bench"}}}}\n')
open(f"{d}/empty.ndjson", "w").close()
