#!/usr/bin/env python3
# The issue-15 probe in one run: starts `kefu serve` (the binary given) on a fresh data
# directory with a world-readable config, then measures what docs/reliability.md's "Security
# probe" table reports: a declared 10^12-byte body, 30 wrong logins, a weak password, three
# ratings of one resolution, the agent view, a 1000-character name, a silent socket, the
# data directory's modes and the config warning. Standard library only.
#
#   python3 scripts/security-probe.py target/debug/kefu
import json, os, socket, subprocess, sys, time, http.client, hashlib, tempfile, stat
binary = sys.argv[1]
os.umask(0o022)  # what a default shell gives: the binary must make its files private itself
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
d = tempfile.mkdtemp()
token = "measure-admin-token-0123456789"
cfg = os.path.join(d, "kefu.toml")
open(cfg, "w").write(f'listen = "127.0.0.1:0"\ndata = "{d}/data"\nknowledge = "{repo}/knowledge"\nintents = "{repo}/intents"\nwatch_interval_ms = 0\npassword_rounds = 1000\nadmin_token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n')
os.chmod(cfg, 0o644)
p = subprocess.Popen([binary, "serve", "--config", cfg], stdout=subprocess.PIPE, stderr=open(d + "/err", "w"), env={**os.environ, "KEFU_LOG": "warn"})
line = p.stdout.readline().decode()
addr = line.split("http://")[1].split()[0]
host, port = addr.split(":"); port = int(port)
def call(method, path, body=None, tok=None, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=15)
    h = {"Content-Type": "application/json"} | (headers or {})
    if tok: h["Authorization"] = "Bearer " + tok
    c.request(method, "/api/v1" + path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse(); data = r.read()
    try: v = json.loads(data)
    except Exception: v = data.decode()
    return r.status, v, dict(r.getheaders())
for _ in range(100):
    try:
        if call("GET", "/../readyz")[0]: break
    except Exception: time.sleep(0.1)
time.sleep(0.5)
out = {}
# (a) oversize declared body
s, v, _ = call("POST", "/conversations", {})
cid, vtok = v["id"], v["token"]
t = time.time()
sock = socket.create_connection((host, port))
sock.sendall(f"POST /api/v1/conversations/{cid}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {vtok}\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{{\"text\":\"x\"}}".encode())
sock.settimeout(30)
ans = sock.recv(200).decode(errors="replace")
out["oversize_content_length"] = f"{ans.split(chr(13))[0]} after {time.time()-t:.2f} s"
sock.close()
# (b) login guessing
call("POST", "/admin/agents", {"id": "wang", "name": "小王", "password": "correct horse battery", "skills": ["*"]}, tok=token)
statuses = {}
t = time.time()
for i in range(30):
    s, v, h = call("POST", "/agent/login", {"id": "wang", "password": f"wrong-{i}"})
    statuses[s] = statuses.get(s, 0) + 1
s, v, h = call("POST", "/agent/login", {"id": "wang", "password": "correct horse battery"})
out["30_wrong_logins"] = f"{statuses} in {time.time()-t:.2f} s; then the right password: {s} retry-after {h.get('retry-after')}"
# weak password
s, v, _ = call("POST", "/admin/agents", {"id": "li", "name": "小李", "password": "12345678", "skills": ["*"]}, tok=token)
out["weak_password_12345678"] = s
# (d) double rating
s, v, _ = call("POST", "/admin/agents", {"id": "zhao", "name": "小赵", "password": "another horse battery", "skills": ["*"]}, tok=token)
s, v, _ = call("POST", "/agent/login", {"id": "zhao", "password": "another horse battery"})
at = v["token"]
call("POST", "/agent/status", {"status": "online"}, tok=at)
s, v, _ = call("POST", "/conversations", {})
c2, t2 = v["id"], v["token"]
call("POST", f"/conversations/{c2}/messages", {"text": "转人工"}, tok=t2)
call("POST", f"/agent/conversations/{c2}/claim", tok=at)
call("POST", f"/agent/conversations/{c2}/resolve", tok=at)
rs = [call("POST", f"/conversations/{c2}/rating", {"score": sc}, tok=t2)[0] for sc in (1, 5, 5)]
s, v, _ = call("GET", "/admin/stats", tok=token)
out["3_ratings_one_resolution"] = f"statuses {rs}, stats ratings {v.get('ratings')}"
s, v, _ = call("GET", f"/agent/conversations/{c2}", tok=at)
out["agent_view_token_hashes"] = "token_hashes" in v.get("conversation", {})
s, v, _ = call("POST", "/conversations", {"name": "名" * 1000})
out["1000_char_name"] = s
# (c) a silent socket
t = time.time()
sock = socket.create_connection((host, port)); sock.settimeout(25)
try:
    got = sock.recv(10); out["silent_socket_closed_after"] = f"{time.time()-t:.1f} s"
except socket.timeout:
    out["silent_socket_closed_after"] = "still open after 25 s"
# (e) permissions
modes = set()
for root, dirs, files in os.walk(d + "/data"):
    for n in dirs + files:
        modes.add(oct(os.stat(os.path.join(root, n)).st_mode & 0o777))
modes.add("data " + oct(os.stat(d + "/data").st_mode & 0o777))
out["data_modes"] = sorted(modes)
p.terminate(); p.wait()
out["config_warning"] = "readable by other users" in open(d + "/err").read()
for k, v in out.items(): print(f"{k}: {v}")
