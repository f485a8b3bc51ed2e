#!/usr/bin/env python3
"""`make run`: Tripline's story on the samples, in a screenful.

The API comes up on loopback; the Dutch NCTV submits a list over HTTP (curl); the extraction workstation posts
Examples/selectors.ndjson; then, for each alert, what was sighted as the operating agency may see it, which
partners were told through which receiver, and the signed checkpoint of the audit log covering it all.
Everything lives in .tripline/ (removed first; TRIPLINE_DEMO_DIR names another directory). Usage: scripts/demo.py [path to tripline]
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/release/tripline"))
WORK = os.path.abspath(os.environ.get("TRIPLINE_DEMO_DIR", os.path.join(ROOT, ".tripline")))
CONFIG = os.path.join(WORK, "demo.yaml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tripline(*args):
    r = subprocess.run([BIN, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tripline {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def curl(port, method, path, token, reason=None, data_file=None, content_type=None, show=False, expect=(200,)):
    """One request with curl (the commands a partner, an analyst or an auditor would type); the decoded answer."""
    args = ["curl", "-sS", "-X", method, "-H", f"Authorization: Bearer {token}", "-w", "\n%{http_code}"]
    if reason:
        args += ["-H", f"Tripline-Reason: {reason}"]
    if content_type:
        args += ["-H", f"Content-Type: {content_type}"]
    if data_file:
        args += ["--data-binary", "@" + data_file]
    url = f"http://127.0.0.1:{port}{path}"
    if show:
        shown = f"curl -X {method} -H \"Authorization: Bearer $TOKEN\""
        if reason:
            shown += f" -H 'Tripline-Reason: {reason}'"
        if data_file:
            shown += f" --data-binary @{os.path.relpath(data_file, ROOT)}"
        print(f"   $ {shown} \\\n       {url}")
    r = subprocess.run(args + [url], capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    if int(code or 0) not in expect:
        sys.exit(f"{method} {path}: {code} {body}")
    try:
        return int(code), json.loads(body) if body.strip().startswith("{") else body
    except json.JSONDecodeError:
        return int(code), body


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: build it first (make build)")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    port = free_port()
    # The sample configuration, with the API on loopback and the audit log signing checkpoints.
    with open(os.path.join(ROOT, "Examples/tripline.yaml")) as f:
        config = f.read().replace("../.tripline/", WORK + "/").replace("../", ROOT + "/")
    config += f'\nhttp: {{listen: "127.0.0.1:{port}"}}\n'
    config += "audit: {key_file: audit.key, origin: demo.tripline.example/audit, checkpoint_interval: 1h}\n"
    with open(CONFIG, "w") as f:
        f.write(config)
    tripline("audit", "keygen", "--name", "demo.tripline.example/audit", "--out", os.path.join(WORK, "audit.key"))
    checked = tripline("check", "--config", CONFIG)
    print("1. " + (checked.stdout + checked.stderr).strip().splitlines()[-1])
    tokens = {}
    for principal in ["partner-nl", "extractor-1", "analyst-ops", "auditor-1", "admin-1"]:
        r = tripline("tokens", "issue", "--config", CONFIG, "--principal", principal, "--expires", "1d",
                     "--as", "admin-1", "--reason", "make run")
        tokens[principal] = r.stdout.strip()
    log = open(os.path.join(WORK, "serve.log"), "w")
    serve = subprocess.Popen([BIN, "serve", "--config", CONFIG], cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if serve.poll() is not None:
                    sys.exit("serve stopped:\n" + open(os.path.join(WORK, "serve.log")).read())
                time.sleep(0.1)
        print(f"2. tripline serve: the API on http://127.0.0.1:{port} (tokens issued with `tripline tokens issue`)")
        story(port, tokens)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)


def receiver_partners():
    """Receiver name → partner, from the sample configuration."""
    out, name = {}, None
    for line in open(CONFIG):
        line = line.strip()
        if line.startswith("- name:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("partner:") and name:
            out[name] = line.split(":", 1)[1].strip()
    return out


def story(port, tokens):
    print("3. The Dutch NCTV submits a list over HTTP:")
    code, r = curl(port, "PUT", "/v1/watchlists/nl-nctv/returnees-2026", tokens["partner-nl"],
                   reason="list update 2026-11", data_file=os.path.join(ROOT, "Examples/nl-returnees.yaml"),
                   content_type="application/yaml", show=True, expect=(201,))
    print(f"   {code} Created: version {r.get('version', '?')[:16]}…, {r.get('entries', '?')} entries")
    code, r = curl(port, "POST", "/v1/selectors", tokens["extractor-1"], reason="MOSUL-PHONE-0042 extraction",
                   data_file=os.path.join(ROOT, "Examples/selectors.ndjson"), content_type="application/x-ndjson",
                   expect=(202,))
    print(f"4. The extraction workstation posts Examples/selectors.ndjson: {r['accepted']} selectors accepted, "
          f"{r['rejected']} rejected")
    # Deliveries are asynchronous (the outbox): wait until nothing is pending.
    for _ in range(100):
        _, out = curl(port, "GET", "/v1/outbox", tokens["admin-1"], reason="make run")
        if all(i.get("status") != "pending" for i in out["items"]):
            break
        time.sleep(0.1)
    _, page = curl(port, "GET", "/v1/alerts?limit=1000", tokens["analyst-ops"], reason="make run: the watch")
    # Who was told what, from the audit log (the auditor's view): notifications queued per receiver, and delivered.
    _, audit = curl(port, "GET", "/v1/audit/records?limit=10000", tokens["auditor-1"], reason="make run: audit")
    queued, delivered = {}, set()
    for r in audit["records"]:
        kind = json.loads(r["record"])["kind"]
        payload = json.loads(r.get("payload") or "{}")
        detail = payload.get("detail", {})
        if kind == "notification_queued":
            for alert in detail.get("alerts", []):
                queued.setdefault(alert, []).append((payload.get("receiver"), detail.get("notification_id")))
        elif kind == "delivered":
            delivered.add(detail.get("notification_id"))
    partner_of = receiver_partners()
    # One line per alert: what it is about and what was sighted, as the operating agency's analyst may see them.
    rules = {}
    alerts = sorted(page["alerts"], key=lambda a: a["alert_id"])
    print(f"5. {len(alerts)} alerts as the operating agency's analyst may see them (GET /v1/alerts; a partner's "
          "restricted content\n   shows as type and country, with whom to ask), and who was told (the audit log):")
    for a in alerts:
        sel = a.get("selector", {})
        if a["kind"] == "rule":
            hit = "rule " + rules.setdefault(a["rule"]["title"], f"R{len(rules) + 1}")
        else:
            wl = a.get("watchlist")
            hit = f"{wl['owner']}/{wl['list']} {wl['ref']}" if wl else f"{a['labels']['owner']} (restricted)"
        if a.get("restricted"):
            seen = " ".join(x for x in [sel.get("type"), sel.get("country")] if x) + f" (ask {a['contact'][0]['partner']})"
        else:
            seen = f"{sel.get('type')} {sel.get('value')}"
        told = sorted({f"{partner_of.get(r, '?')}@{r}" + ("" if n in delivered else " (pending)")
                       for r, n in queued.get(a["alert_id"], [])})
        print(f"   #{a['alert_id']:<3}{a['priority'][:4]:<5}{hit:<37.37} {seen:<32.32} "
              f"→ {', '.join(told) or 'not notified (inhibited)'}")
    for title, tag in rules.items():
        print(f"   {tag}: {title}")
    _, note = curl(port, "GET", "/v1/audit/checkpoint", tokens["auditor-1"], reason="make run: audit")
    print("6. The signed checkpoint covering every record above (GET /v1/audit/checkpoint):")
    for line in note.strip().splitlines():
        print("   " + line)
    print("   Anyone with the verifier key checks it and the whole log offline: tripline audit verify --bundle DIR,\n"
          "   after POST /v1/audit/exports (auditors); GET /v1/audit/proof/inclusion?index=N proves one record in it.")


if __name__ == "__main__":
    main()
