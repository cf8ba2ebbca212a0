#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a real ferrosync-server, for the browser sync tests.

It starts the real server (command after `--`), forwards every request to it unchanged, and lets a test
inject the failures a real network and a real server produce — refused connections, 5xx, a reply lost
after the server applied the push, a malformed body, a killed and restarted server, a reset database
(new epoch) — through a small control API under /__control (CORS open, loopback only):

  POST /__control/fault     {"mode": M, "path": "/v1/push"|"/v1/pull"|"" , "count": N}
        M = none | down (connection closed, no reply) | error500 | status401 | malformed
            | kill_after_forward (forward, then kill -9 the server and drop the reply; restarted at once)
            | refuse_marker (a request whose body contains "marker" gets 400 INVALID_CHANGE, as a
              rule the server checks and the client does not; counts only such requests)
            | delay (wait "ms" milliseconds, then forward)
  POST /__control/restart   kill -9 and start the server again on the same database
  POST /__control/reset     kill, delete the database files, start again (a new epoch)
  GET  /__control/stats     {"requests": {path: count}, "faultsLeft": N}
  POST /__control/clearstats

Usage: faultproxy.py --listen PORT --upstream-port PORT --db-file PATH -- ferrosync-server args...
"""
import argparse
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import http.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()
STATE = {"mode": "none", "path": "", "count": 0, "stats": {}, "marker": "", "ms": 0}
SERVER = {"proc": None}
ARGS = None


def start_server():
    with LOCK:
        SERVER["proc"] = subprocess.Popen(ARGS.command)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", ARGS.upstream_port), timeout=0.2):
                    return
            except OSError:
                if SERVER["proc"].poll() is not None:
                    raise RuntimeError("ferrosync-server exited at start")
                time.sleep(0.05)
        raise RuntimeError("ferrosync-server did not start listening")


def kill_server():
    with LOCK:
        p = SERVER["proc"]
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()


def take_fault(path, body=b""):
    with LOCK:
        if STATE["mode"] == "refuse_marker" and STATE["marker"].encode() not in body:
            return None
        if STATE["count"] > 0 and STATE["mode"] != "none" and path.startswith(STATE["path"]):
            STATE["count"] -= 1
            return STATE["mode"]
    return None


def _first_doc(page, f):
    """Applies `f` to the first change that has a document (a pull page)."""
    for c in page.get("changes", []):
        if "doc" in c:
            f(c)
            break
    return page


# Pull replies that parse as JSON but break the protocol's rules, as a hostile server could send.
HOSTILE_PAGES = {
    # A document whose own id is not its change's.
    "pull_wrong_id": lambda p: _first_doc(p, lambda c: c["doc"].update(id=c["id"] + "-other")),
    # A document that is not an object.
    "pull_array_doc": lambda p: _first_doc(p, lambda c: c.update(doc=[c["doc"]])),
    # A document without an id.
    "pull_no_id": lambda p: _first_doc(p, lambda c: c["doc"].pop("id")),
    # `changes` that is not an array.
    "pull_changes_object": lambda p: dict(p, changes={"0": p.get("changes")}),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def cors(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.cors()
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self):
        if self.path.startswith("/__control"):
            self.send_response(204)
            self.cors()
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.forward()

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def route(self):
        if self.path.startswith("/__control"):
            return self.control()
        self.forward()

    def control(self):
        body = self.body()
        cmd = self.path.split("?")[0][len("/__control/"):]
        with LOCK:
            if cmd == "fault":
                f = json.loads(body or b"{}")
                STATE.update(mode=f.get("mode", "none"), path=f.get("path", ""), count=int(f.get("count", 1)),
                             marker=f.get("marker", ""), ms=int(f.get("ms", 0)))
            elif cmd == "restart":
                kill_server()
                start_server()
            elif cmd == "reset":
                kill_server()
                for f in glob.glob(ARGS.db_file + "*"):
                    os.remove(f)
                start_server()
            elif cmd == "clearstats":
                STATE["stats"] = {}
            elif cmd != "stats":
                return self.reply(404, json.dumps({"error": {"code": "NOT_FOUND", "message": cmd}}))
            out = {"requests": STATE["stats"], "faultsLeft": STATE["count"], "mode": STATE["mode"]}
        self.reply(200, json.dumps(out))

    def forward(self):
        path = self.path.split("?")[0]
        body = self.body() if self.command != "GET" else b""
        if self.command != "OPTIONS":
            with LOCK:
                STATE["stats"][path] = STATE["stats"].get(path, 0) + 1
        fault = take_fault(path, body) if self.command != "OPTIONS" else None
        if fault == "refuse_marker":
            return self.reply(400, json.dumps({
                "error": {"code": "INVALID_CHANGE", "message": "refused by a server-side rule (test)"},
                "serverTime": int(time.time() * 1000)}))
        if fault == "delay":
            time.sleep(STATE["ms"] / 1000.0)
        if fault == "down":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "error500":
            return self.reply(500, json.dumps({"error": {"code": "INTERNAL", "message": "injected"}}))
        if fault == "status401":
            return self.reply(401, json.dumps({"error": {"code": "UNAUTHORIZED", "message": "injected"}}))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            conn = http.client.HTTPConnection("127.0.0.1", ARGS.upstream_port, timeout=60)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
        except OSError:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == "kill_after_forward":
            resp.read()
            kill_server()
            start_server()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        ctype = resp.getheader("Content-Type", "")
        if "text/event-stream" in ctype:
            return self.stream(resp)
        data = resp.read()
        if fault == "malformed":
            data = b'{"results": [{"status": "sideways"}], "changes": 7, "cursor": null'
        if fault in HOSTILE_PAGES and resp.status == 200:
            data = json.dumps(HOSTILE_PAGES[fault](json.loads(data))).encode()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, resp):
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            while True:
                line = resp.fp.readline()
                if not line:
                    break
                self.wfile.write(line)
                self.wfile.flush()
        except OSError:
            pass


def main():
    global ARGS
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    i = argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--db-file", required=True)
    ARGS = p.parse_args(argv[:i])
    ARGS.command = argv[i + 1:]
    start_server()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.listen), Handler)
    srv.daemon_threads = True

    def stop(*_):
        kill_server()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"faultproxy listening on 127.0.0.1:{ARGS.listen} -> {ARGS.upstream_port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
