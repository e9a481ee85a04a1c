#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub, for the hub client tests (standard library only).

    fake_hub.py --root DIR --state FILE [--config FILE] [--lifetime SECONDS] [--tls CERT KEY]

DIR holds repositories as folders: DIR/models/OWNER/NAME/... and DIR/datasets/OWNER/NAME/...
Each repository has one commit (sha1 of its contents) on branch "main". The server listens on
127.0.0.1 (port chosen by the OS, written to FILE as {"port": N} once it is ready) and answers what
huggingface_hub calls:
  GET  /api/{models|datasets}/REPO/revision/REV          {"sha": COMMIT, "siblings": [...]}
  GET  /api/{models|datasets}/REPO/tree/REV[/PATH]?recursive=true|false
       entries {type, oid, size, path[, lfs{oid, size, pointerSize}]}, 2 per page, Link: rel="next"
  GET|HEAD /[datasets/]REPO/resolve/REV/PATH
       small files (*.json, *.md, .gitattributes): 200 with ETag (git blob sha1) and X-Repo-Commit;
       others are LFS: 302 to http://localhost:PORT/cdn/SHA256?sig=... (another host name) with
       X-Repo-Commit, X-Linked-Etag (quoted sha256) and X-Linked-Size.
  GET|HEAD /cdn/SHA256  the blob; honours Range; refuses (400) and counts any Authorization header.
Errors as the hub sends them: 404 + X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound,
401 + GatedRepo for the repositories listed as gated unless the right token is sent.

--config (JSON) sets faults and access:
  "token": "hf_x"               the token gated repositories accept
  "gated": ["OWNER/NAME", ...]   repositories that need it
  "renamed": {"OLD/NAME": "OWNER/NAME"}   resolve requests on OLD answer 307 to the new name (same host)
  "cut_once": [PATH, ...]        the first CDN transfer of that file stops after half the bytes
  "fail_once": [PATH, ...]       the first resolve request of that file answers 503
  "corrupt": [PATH, ...]         the CDN serves that file with one byte changed (every time)
PATH is the file's path in its repository. After every request the counters are written to FILE
(atomically): {"port", "requests": {"api": n, "resolve": n, "cdn": n}, "bytes": {PATH: n},
"ranges": {PATH: ["bytes=N-", ...]}, "auth_on_cdn": n, "auth_on_hub": {PATH: bool}}.
With --tls every URL is https (CERT must name both 127.0.0.1 and localhost).
The server exits after --lifetime seconds (default 300), whatever happens.
"""
import argparse
import hashlib
import json
import os
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = 2
SMALL = (".json", ".md", ".gitattributes")


class Repo:
    def __init__(self, kind, rid, folder):
        self.kind, self.id, self.folder = kind, rid, folder
        self.files = {}  # path -> dict(size, oid, sha256 or None, data)
        for base, _, names in os.walk(folder):
            for n in sorted(names):
                full = os.path.join(base, n)
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                with open(full, "rb") as f:
                    data = f.read()
                oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                lfs = not rel.endswith(SMALL)
                self.files[rel] = {"size": len(data), "oid": oid, "data": data,
                                   "sha256": hashlib.sha256(data).hexdigest() if lfs else None}
        digest = hashlib.sha1(rid.encode())
        for p in sorted(self.files):
            digest.update(p.encode() + self.files[p]["oid"].encode())
        self.commit = digest.hexdigest()

    def folders(self):
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


class State:
    def __init__(self, root, config, state_file):
        self.lock = threading.Lock()
        self.repos = {}
        for kind in ("models", "datasets"):
            top = os.path.join(root, kind)
            if not os.path.isdir(top):
                continue
            for owner in sorted(os.listdir(top)):
                for name in sorted(os.listdir(os.path.join(top, owner))):
                    rid = owner + "/" + name
                    self.repos[(kind, rid)] = Repo(kind, rid, os.path.join(top, owner, name))
        self.blobs = {}
        for repo in self.repos.values():
            for p, f in repo.files.items():
                if f["sha256"]:
                    self.blobs[f["sha256"]] = (repo, p)
        self.config = config
        self.state_file = state_file
        self.port = 0
        self.scheme = "http"
        self.requests = {"api": 0, "resolve": 0, "cdn": 0}
        self.bytes = {}
        self.ranges = {}
        self.auth_on_cdn = 0
        self.auth_on_hub = {}
        self.cut_done = set()
        self.fail_done = set()

    def save(self):
        data = {"port": self.port, "requests": self.requests, "bytes": self.bytes, "ranges": self.ranges,
                "auth_on_cdn": self.auth_on_cdn, "auth_on_hub": self.auth_on_hub}
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.state_file)


STATE = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.handle_request(head=True)

    def do_GET(self):
        self.handle_request(head=False)

    # -- helpers

    def send(self, status, body=b"", headers=None, head=False):
        STATE.save()  # the counters are on disk before the client sees the answer
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def error(self, status, code, message, head):
        self.send(status, json.dumps({"error": message}).encode(),
                  {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}, head)

    def find_repo(self, kind, parts, head):
        """(repo, rest) from path parts OWNER/NAME/...; sends the error itself and returns None."""
        if len(parts) < 2:
            self.error(404, "RepoNotFound", "Repository not found", head)
            return None
        rid = parts[0] + "/" + parts[1]
        repo = STATE.repos.get((kind, rid))
        if repo is None:
            self.error(404, "RepoNotFound", "Repository not found", head)
            return None
        if rid in STATE.config.get("gated", []):
            want = "Bearer " + STATE.config.get("token", "")
            if self.headers.get("Authorization") != want:
                self.error(401, "GatedRepo", "Access to this repository is restricted", head)
                return None
        return repo, parts[2:]

    def check_revision(self, repo, rev, head):
        if rev not in ("main", repo.commit):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + rev, head)
            return False
        return True

    # -- routes

    def handle_request(self, head):
        url = urllib.parse.urlsplit(self.path)
        raw = url.path.split("/")[1:]
        query = urllib.parse.parse_qs(url.query)
        with STATE.lock:
            try:
                if raw and raw[0] == "api":
                    STATE.requests["api"] += 1
                    self.api([urllib.parse.unquote(p) for p in raw[1:]], query, head)
                elif raw and raw[0] == "cdn":
                    STATE.requests["cdn"] += 1
                    self.cdn(raw[1] if len(raw) > 1 else "", head)
                else:
                    STATE.requests["resolve"] += 1
                    self.resolve([urllib.parse.unquote(p) for p in raw], head)
            finally:
                STATE.save()

    def api(self, parts, query, head):
        if len(parts) < 4 or parts[0] not in ("models", "datasets"):
            return self.send(404, b"not found", head=head)
        found = self.find_repo(parts[0], parts[1:], head)
        if found is None:
            return
        repo, rest = found
        if len(rest) >= 2 and rest[0] == "revision":
            if not self.check_revision(repo, rest[1], head):
                return
            body = {"id": repo.id, "sha": repo.commit, "siblings": [{"rfilename": p} for p in sorted(repo.files)]}
            return self.send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        if len(rest) >= 2 and rest[0] == "tree":
            if not self.check_revision(repo, rest[1], head):
                return
            folder = "/".join(rest[2:])
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            if folder and folder not in repo.folders():
                return self.error(404, "EntryNotFound", folder + " does not exist", head)
            prefix = folder + "/" if folder else ""
            entries = []
            for d in sorted(repo.folders()):
                if d.startswith(prefix) and (recursive or "/" not in d[len(prefix):]):
                    entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d})
            for p in sorted(repo.files):
                if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):]):
                    f = repo.files[p]
                    e = {"type": "file", "oid": f["oid"], "size": f["size"], "path": p}
                    if f["sha256"]:
                        e["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}
                    entries.append(e)
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start:start + PAGE]
            headers = {"Content-Type": "application/json"}
            if start + PAGE < len(entries):
                q = urllib.parse.urlencode({"recursive": str(recursive).lower(), "expand": "false", "cursor": start + PAGE})
                headers["Link"] = '<%s://127.0.0.1:%d%s?%s>; rel="next"' % (STATE.scheme, STATE.port, urllib.parse.urlsplit(self.path).path, q)
            return self.send(200, json.dumps(page).encode(), headers, head)
        self.send(404, b"not found", head=head)

    def resolve(self, parts, head):
        kind = "models"
        if parts and parts[0] == "datasets":
            kind, parts = "datasets", parts[1:]
        if len(parts) >= 2:
            old = parts[0] + "/" + parts[1]
            new = STATE.config.get("renamed", {}).get(old)
            if new:
                location = "/" + ("datasets/" if kind == "datasets" else "") + new + "/" + "/".join(
                    urllib.parse.quote(p, safe="") for p in parts[2:])
                return self.send(307, b"", {"Location": location}, head)
        found = self.find_repo(kind, parts, head)
        if found is None:
            return
        repo, rest = found
        if len(rest) < 3 or rest[0] != "resolve":
            return self.send(404, b"not found", head=head)
        if not self.check_revision(repo, rest[1], head):
            return
        path = "/".join(rest[2:])
        f = repo.files.get(path)
        if f is None:
            return self.error(404, "EntryNotFound", path + " does not exist", head)
        STATE.auth_on_hub[path] = self.headers.get("Authorization") is not None
        if path in STATE.config.get("fail_once", []) and path not in STATE.fail_done and not head:
            STATE.fail_done.add(path)
            return self.send(503, b"busy", {"Retry-After": "0"}, head)
        common = {"X-Repo-Commit": repo.commit}
        if f["sha256"]:
            location = "%s://localhost:%d/cdn/%s?sig=secret" % (STATE.scheme, STATE.port, f["sha256"])
            common.update({"Location": location, "X-Linked-Etag": '"%s"' % f["sha256"],
                           "X-Linked-Size": str(f["size"]), "ETag": '"%s"' % f["oid"]})
            return self.send(302, b"", common, head)
        common["ETag"] = '"%s"' % f["oid"]
        self.send_bytes(path, f["data"], common, head)

    def cdn(self, sha, head):
        if self.headers.get("Authorization") is not None:
            STATE.auth_on_cdn += 1
            return self.send(400, b"token sent to the CDN", head=head)
        found = STATE.blobs.get(sha)
        if found is None:
            return self.send(404, b"no such blob", head=head)
        repo, path = found
        data = repo.files[path]["data"]
        if path in STATE.config.get("corrupt", []):
            data = bytes([data[0] ^ 1]) + data[1:]
        cut = path in STATE.config.get("cut_once", []) and path not in STATE.cut_done and not head
        if cut:
            STATE.cut_done.add(path)
        self.send_bytes(path, data, {"ETag": '"%s"' % sha}, head, cut=cut)

    def send_bytes(self, path, data, headers, head, cut=False):
        start = 0
        rng = self.headers.get("Range")
        if rng:
            STATE.ranges.setdefault(path, []).append(rng)
            spec = rng.replace("bytes=", "").split("-")[0]
            start = int(spec)
            if start >= len(data):
                return self.send(416, b"", {"Content-Range": "bytes */%d" % len(data)}, head)
        body = data[start:]
        sent = 0 if head else (len(body) // 2 if cut else len(body))
        STATE.bytes[path] = STATE.bytes.get(path, 0) + sent
        STATE.save()  # the counters are on disk before the client sees the answer
        self.send_response(206 if rng else 200)
        for k, v in headers.items():
            self.send_header(k, v)
        if rng:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        if cut:
            self.wfile.write(body[:sent])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--config")
    ap.add_argument("--lifetime", type=float, default=300)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    config = {}
    if args.config:
        with open(args.config) as f:
            config = json.load(f)
    STATE = State(args.root, config, args.state)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        STATE.scheme = "https"
    STATE.port = server.server_address[1]
    STATE.save()
    timer = threading.Timer(args.lifetime, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever()


if __name__ == "__main__":
    main()
