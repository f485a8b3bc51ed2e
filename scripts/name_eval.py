#!/usr/bin/env python3
"""Name-matching evaluation data from the UN Security Council consolidated list (issue 7).

  name_eval.py individuals XML          one JSON line per individual: id, names (primary + Good aliases, Latin
                                         script), original (the original-script name, if any)
  name_eval.py variants XML [SEED]      seeded spelling variants of listed names, as a seized contact list holds
                                         them: kind <TAB> query <TAB> individual id
  name_eval.py negatives XML OUT        (run once; the output is committed) names of the same regions that are
                                         far from every listed name

The given-name and family-name parts used for negatives are common public names of the regions concerned
(Arabic-, Persian-, Turkic-, Somali-, Afghan/Pakistani-, Caucasus- and Central-African-speaking), written down
for this project."""
import json, random, re, sys, unicodedata
import xml.etree.ElementTree as ET

def latin(s):
    return all(ord(c) < 0x250 or not c.isalpha() for c in s)

def individuals(path):
    root = ET.parse(path).getroot()
    out = []
    for x in root.find("INDIVIDUALS"):
        parts = [x.findtext(f) or "" for f in ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")]
        primary = " ".join(p.strip() for p in parts if p.strip())
        names = [primary] if primary else []
        for a in x.findall("INDIVIDUAL_ALIAS"):
            q = (a.findtext("QUALITY") or "").strip()
            n = (a.findtext("ALIAS_NAME") or "").strip()
            if n and q != "Low" and latin(n) and n not in names:
                names.append(n)
        orig = (x.findtext("NAME_ORIGINAL_SCRIPT") or "").strip()
        out.append({"id": x.findtext("REFERENCE_NUMBER").strip(), "names": names, "original": orig})
    return out

PARTICLES = {"al": ["el", "", "al"], "el": ["al", ""], "bin": ["ben", "ibn"], "ben": ["bin"], "ibn": ["bin"],
             "abu": ["abou", "abo"], "abou": ["abu"], "abd": ["abdul", "abdel"], "abdul": ["abd al", "abdel"],
             "abdel": ["abd al", "abdul"]}
GIVEN = {"muhammad": ["mohammed", "mohamed", "mohamad", "muhammed"], "mohammed": ["muhammad", "mohamed"],
         "mohamed": ["muhammad", "mohammed"], "mohammad": ["muhammad", "mohamed"], "ahmad": ["ahmed"],
         "ahmed": ["ahmad"], "yusuf": ["youssef", "yousef"], "youssef": ["yusuf"], "umar": ["omar"], "omar": ["umar"],
         "husayn": ["hussein", "hussain"], "hussein": ["husayn", "hussain"], "hassan": ["hasan"], "hasan": ["hassan"],
         "abdullah": ["abdallah", "abdulla"], "abdallah": ["abdullah"], "ibrahim": ["ebrahim", "brahim"],
         "mustafa": ["moustafa", "mostafa"], "khalid": ["khaled"], "khaled": ["khalid"], "said": ["saeed", "sayed"],
         "saeed": ["said"], "usama": ["osama"], "osama": ["usama"], "uthman": ["othman", "osman"],
         "sulaiman": ["suleiman", "sulayman"], "ismail": ["ismael"], "mahmud": ["mahmoud"], "mahmoud": ["mahmud"]}

def tokens(name):
    return [t for t in re.split(r"[\s]+", name.replace("-", " ").strip()) if t]

def variants(path, seed):
    rng = random.Random(seed)
    out = []
    for ind in individuals(path):
        for name in ind["names"][:2]:
            t = tokens(name)
            if len(t) < 2:
                continue
            lower = [w.lower() for w in t]
            # order swapped: "SURNAME, Given"
            out.append(("order", t[-1].upper() + ", " + " ".join(w.capitalize() for w in t[:-1]), ind["id"]))
            # particles re-spelled or dropped
            if any(w in PARTICLES for w in lower):
                v = []
                for w in lower:
                    v.append(rng.choice(PARTICLES[w]) if w in PARTICLES else w)
                out.append(("particle", " ".join(x for x in v if x), ind["id"]))
            # given-name transliteration
            if any(w in GIVEN for w in lower):
                v = [rng.choice(GIVEN[w]) if w in GIVEN else w for w in lower]
                out.append(("given", " ".join(v), ind["id"]))
            # a middle name dropped
            content = [i for i, w in enumerate(lower) if w not in PARTICLES]
            if len(content) >= 4:
                drop = rng.choice(content[1:-1])
                out.append(("middle", " ".join(w for i, w in enumerate(t) if i != drop), ind["id"]))
            # one typo in one token of five letters or more
            long_ = [i for i, w in enumerate(lower) if len(w) >= 5 and w not in PARTICLES]
            if long_:
                i = rng.choice(long_)
                w = list(lower[i])
                k = rng.randrange(1, len(w) - 1)
                op = rng.choice(["sub", "del", "swap", "ins"])
                if op == "sub":
                    w[k] = rng.choice("aeioumnrst")
                elif op == "del":
                    del w[k]
                elif op == "swap":
                    w[k], w[k + 1] = w[k + 1], w[k]
                else:
                    w.insert(k, w[k])
                v = list(lower)
                v[i] = "".join(w)
                out.append(("typo", " ".join(v), ind["id"]))
            # case
            out.append(("case", " ".join(w.lower() if rng.random() < 0.5 else w.upper() for w in t), ind["id"]))
    return out

NEG_GIVEN = """ahmad ali omar hassan hussein ibrahim yusuf khalid said walid tariq karim nabil samir rami fadi bassam
hisham ziad imad nizar marwan jamal kamal adel anas bilal hamza idris ismail jalal mansur munir nasir qasim rashid
salim sami tamer wael yasser zakaria faisal ghassan hakim hatem issam jawad kareem latif mazen nadim osman
reza farhad dariush kaveh babak arash mehdi hamid javad behzad farid navid omid parviz rostam shahram siavash
aslan ruslan timur bekzod dilshod farrukh jasur nodir otabek sardor ulugbek zafar aziz rustam alisher
abdi abdirahman farah hodan warsame jama yusuf liban mahad nuur sahra asha hibo fadumo amina layla noura salma
rania dina hana maya lina yasmin zainab khadija fatima mariam aisha samira nadia leila souad naima""".split()
NEG_FAMILY = """haddad khoury nassar saleh mansour qasem hamdan darwish sabbagh jaber najjar halabi shami masri
tahan attar bitar kassab farhat zoghbi chehab rizk aoun sfeir karam issa salameh awad barakat abboud ghanem
hijazi obeid sarraf tannous yazbek zein frangieh gemayel hobeika moussawi daher kanaan bishara makdisi
ahmadi hosseini rezaei mohammadi karimi rahimi moradi jafari ghorbani sadeghi heydari rostami tehrani shirazi
esfahani kermani tabrizi yazdi zand farahani golestani mirzaei safavi
yilmaz kaya demir sahin celik aydin ozturk arslan dogan kilic aslan cetin korkmaz ozdemir erdem polat
karimov rakhimov tursunov yusupov nazarov saidov aliyev mammadov hasanov huseynov ismayilov guliyev
dudayev kadyrov magomedov gadzhiev abdulaev umarov ibragimov aliev khasbulatov yandarbiev
warsame hersi jama farah ahmed dirie samatar abdille gedi omar elmi nur adan duale hashi
khan durrani popalzai barakzai achakzai yousafzai afridi khattak wazir mehsud qureshi chaudhry siddiqui
ansari malik butt awan sheikh rajput bhatti gill abbasi kazmi naqvi rizvi jafri zaidi
diallo traore keita coulibaly kone sangare toure camara sylla cisse diarra konate""".split()

def norm(w):
    return unicodedata.normalize("NFKD", w.lower()).encode("ascii", "ignore").decode()

def skel(w):
    w = norm(w)
    for a, b in (("sch", "S"), ("sh", "S"), ("ch", "S"), ("kh", "K"), ("gh", "G"), ("th", "t"), ("dh", "d"),
                 ("ph", "f"), ("dj", "j"), ("q", "k"), ("c", "k"), ("g", "j"), ("p", "b"), ("v", "f")):
        w = w.replace(a, b)
    out = w[:1] if w[:1] in "yw" else ""
    for ch in w[1:] if out else w:
        if ch in "aeiouyw":
            continue
        if not out or out[-1] != ch:
            out += ch
    return out

def keys(w):
    n = norm(w)
    return {"s:" + skel(n), "p:" + n[:3], "x:" + n}

def negatives(path, out_path, seed=20261123, count=2000):
    rng = random.Random(seed)
    posting = {}
    listed = individuals(path)
    for k, ind in enumerate(listed):
        for name in ind["names"]:
            for t in tokens(name):
                if norm(t) in PARTICLES or len(t) < 2:
                    continue
                for key in keys(t):
                    posting.setdefault(key, set()).add(k)
    made = set()
    with open(out_path, "w") as f:
        f.write("# names not on the UN list, far from every listed name: generated once by\n")
        f.write("# scripts/name_eval.py negatives (seed 20261123); no listed individual shares two tokens with one\n")
        while len(made) < count:
            parts = [rng.choice(NEG_GIVEN)]
            if rng.random() < 0.4:
                parts.append(rng.choice(NEG_GIVEN))
            parts.append(rng.choice(NEG_FAMILY))
            if len(set(parts)) < len(parts):
                continue
            name = " ".join(p.capitalize() for p in parts)
            if name in made:
                continue
            hits = {}
            for t in parts:
                for k in set().union(*(posting.get(key, set()) for key in keys(t))):
                    hits[k] = hits.get(k, 0) + 1
            if any(v >= 2 for v in hits.values()):
                continue
            made.add(name)
            f.write(name + "\n")

def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "individuals":
        for i in individuals(path):
            print(json.dumps(i, ensure_ascii=False))
    elif cmd == "variants":
        for kind, q, i in variants(path, int(sys.argv[3]) if len(sys.argv) > 3 else 20261123):
            print(f"{kind}\t{q}\t{i}")
    elif cmd == "negatives":
        negatives(path, sys.argv[3])
    else:
        sys.exit("usage: name_eval.py individuals|variants|negatives XML [SEED|OUT]")

main()
