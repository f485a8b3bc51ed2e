#!/usr/bin/env python3
"""Differential test cases for Tripline's phone reader, answered by the `phonenumbers` package.

Writes one tab-separated case per line:
    set  input  region  e164|ERR  valid(0/1)  region_of_number  line_type  area
`area` is libphonenumber's English geographic description for fixed lines when it names more than the
country ("-" otherwise).
`set` is `valid` (numbers phonenumbers calls valid, written in one of the formats below) or
`invalid` (strings phonenumbers parses but calls invalid). `region` is the hint given to both
implementations ("-" for none).

Formats of valid numbers: E.164, international, national (with the number's region), RFC 3966,
dialled from abroad with that country's international prefix (00, 011, 810, ...), vanity letters,
and free punctuation.  Usage: phone_cases.py SEED PER_REGION OUT
"""

import random
import sys

import phonenumbers
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T
from phonenumbers import PhoneMetadata
from phonenumbers import geocoder

TYPE_NAMES = {
    T.FIXED_LINE: "fixed_line", T.MOBILE: "mobile", T.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    T.TOLL_FREE: "toll_free", T.PREMIUM_RATE: "premium_rate", T.SHARED_COST: "shared_cost",
    T.VOIP: "voip", T.PERSONAL_NUMBER: "personal_number", T.PAGER: "pager", T.UAN: "uan",
    T.VOICEMAIL: "voicemail", T.UNKNOWN: "unknown",
}
DESCS = ["fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
         "voip", "pager", "uan", "voicemail"]
DIALLING_FROM = ["US", "GB", "FR", "DE", "RU", "JP", "AU", "BR", "IQ", "SY", "TR", "BE", "NL", "KR",
                 "CN", "IN", "SG", "CO", "IL", "ZA"]
LETTERS = {"2": "ABC", "3": "DEF", "4": "GHI", "5": "JKL", "6": "MNO", "7": "PQRS", "8": "TUV", "9": "WXYZ"}
PUNCT = [" ", "-", ".", " ", "/", ""]


def expected(text, region):
    try:
        n = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return ("ERR", "0", "-", "-", "-")
    valid = phonenumbers.is_valid_number(n)
    r = phonenumbers.region_code_for_number(n) or "-"
    nt = phonenumbers.number_type(n)
    t = TYPE_NAMES[nt] if valid else "-"
    area = "-"
    if valid and nt in (T.FIXED_LINE, T.FIXED_LINE_OR_MOBILE):
        d = geocoder.description_for_number(n, "en")
        if d and d != geocoder.country_name_for_number(n, "en"):
            area = d
    return (phonenumbers.format_number(n, F.E164), "1" if valid else "0", r if valid else "-", t, area)


def variants(rng, n, region):
    out = []
    e164 = phonenumbers.format_number(n, F.E164)
    out.append((e164, None))
    out.append((phonenumbers.format_number(n, F.INTERNATIONAL), None))
    out.append((phonenumbers.format_number(n, F.RFC3966), None))
    if region != "001":
        nat = phonenumbers.format_number(n, F.NATIONAL)
        out.append((nat, region))
        # free punctuation over the national digits
        digits = [c for c in nat if c.isdigit()]
        text = ""
        for i, c in enumerate(digits):
            if i == 0 and rng.random() < 0.3:
                text += "("
            text += c
            if i < len(digits) - 1 and rng.random() < 0.35:
                text += rng.choice(PUNCT)
        out.append((text, region))
        # vanity: the last digits 2-9 written as keypad letters
        chars = list(nat)
        idx = [i for i, c in enumerate(chars) if c in LETTERS]
        if len(idx) >= 4:
            for i in idx[-4:]:
                chars[i] = rng.choice(LETTERS[chars[i]])
            out.append(("".join(chars), region))
    src = rng.choice(DIALLING_FROM)
    if src != region:
        out.append((phonenumbers.format_out_of_country_calling_number(n, src), src))
    return out


def random_valid(rng, region, per_region):
    if region == "001":
        return []
    md = PhoneMetadata.metadata_for_region(region)
    examples = []
    for d in DESCS:
        desc = getattr(md, d)
        if desc is not None and desc.example_number:
            examples.append(desc.example_number)
    found = []
    tries = 0
    while examples and len(found) < per_region and tries < per_region * 30:
        tries += 1
        ex = rng.choice(examples)
        k = rng.randint(1, max(1, len(ex) - 2))
        digits = ex[: len(ex) - k] + "".join(rng.choice("0123456789") for _ in range(k))
        try:
            n = phonenumbers.parse("+%d%s" % (md.country_code, digits), None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(n):
            found.append(n)
    return found


def nongeo_valid(rng, per_code):
    found = []
    for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        md = PhoneMetadata.metadata_for_nongeo_region(cc)
        examples = [getattr(md, d).example_number for d in DESCS
                    if getattr(md, d) is not None and getattr(md, d).example_number]
        for _ in range(per_code * 10):
            if not examples or len([f for f in found if f.country_code == cc]) >= per_code:
                break
            ex = rng.choice(examples)
            k = rng.randint(1, max(1, len(ex) - 2))
            digits = ex[: len(ex) - k] + "".join(rng.choice("0123456789") for _ in range(k))
            n = phonenumbers.parse("+%d%s" % (cc, digits), None)
            if phonenumbers.is_valid_number(n):
                found.append(n)
    return found


def main():
    seed, per_region, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    rows = []
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    for region in regions:
        for n in random_valid(rng, region, per_region):
            for text, hint in variants(rng, n, region):
                e, v, r, t, a = expected(text, hint)
                if v == "1":
                    rows.append(("valid", text, hint or "-", e, v, r, t, a))
        # invalid: random national and international strings that phonenumbers parses but rejects
        md = PhoneMetadata.metadata_for_region(region)
        made = 0
        for _ in range(per_region * 4):
            if made >= per_region // 2:
                break
            length = rng.randint(3, 14)
            digits = "".join(rng.choice("0123456789") for _ in range(length))
            if rng.random() < 0.5:
                text, hint = digits, region
            else:
                text, hint = "+%d %s" % (md.country_code, digits), None
            e, v, r, t, a = expected(text, hint)
            if e != "ERR" and v == "0":
                rows.append(("invalid", text, hint or "-", e, v, r, t, a))
                made += 1
    for n in nongeo_valid(rng, max(2, per_region // 4)):
        for text, hint in variants(rng, n, "001"):
            e, v, r, t, a = expected(text, hint)
            if v == "1":
                rows.append(("valid", text, hint or "-", e, v, r, t, a))
    with open(out, "w", encoding="utf-8") as f:
        f.write("# phonenumbers %s seed %d\n" % (phonenumbers.__version__, seed))
        for row in rows:
            f.write("\t".join(row) + "\n")
    print("%d cases, %d regions" % (len(rows), len(regions)))


if __name__ == "__main__":
    main()
