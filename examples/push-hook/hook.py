#!/usr/bin/env python3
"""A ferrosync push hook in plain Python (standard library only).

Run:    python3 hook.py --port 8091
Server: ferrosync-server --push-hook http://127.0.0.1:8091/hook

Rules: a title longer than 200 characters is refused (TITLE_TOO_LONG); a title with leading or
trailing whitespace is trimmed (the document is replaced). Everything else is accepted.
See docs/OPERATIONS.md, "The push hook".
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_TITLE = 200


def verdict(change):
    doc = change.get("doc")
    if change.get("deleted") or not isinstance(doc, dict):
        return {"action": "accept"}
    title = doc.get("title")
    if not isinstance(title, str):
        return {"action": "accept"}
    if len(title) > MAX_TITLE:
        return {
            "action": "reject",
            "code": "TITLE_TOO_LONG",
            "message": f"titles are at most {MAX_TITLE} characters (got {len(title)})",
        }
    if title.strip() != title:
        return {"action": "replace", "doc": {**doc, "title": title.strip()}}
    return {"action": "accept"}


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        try:
            push = json.loads(self.rfile.read(length))
            body = {"results": [verdict(c) for c in push["changes"]]}
            status = 200
        except (ValueError, KeyError, TypeError) as e:
            body, status = {"error": str(e)}, 400
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Hook)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
