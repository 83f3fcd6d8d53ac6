"""Schemathesis hooks for scripts/schemathesis: keep every delivery on this machine.

Endpoint URLs that schemathesis generates would send deliveries (and DNS lookups) to arbitrary
hosts. Every string `url` in a request body is rewritten to a sink on 127.0.0.1 that answers 204,
so endpoints, test sends and fan-out deliveries all stay on loopback.
"""

import http.server
import threading

import schemathesis


class _Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
threading.Thread(target=_server.serve_forever, daemon=True).start()
SINK = f"http://127.0.0.1:{_server.server_address[1]}/sink"


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body["url"] = SINK
    return body


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Every phase goes through here, whichever way its body was made.
    if isinstance(case.body, dict) and isinstance(case.body.get("url"), str):
        case.body["url"] = SINK
