"""A webhook receiver on the standard library: checks each delivery's signature, skips events
it has already handled (delivery is at least once), and prints the rest.

    QUORUM_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py 8000
"""

from __future__ import annotations

import http.server
import json
import os
import sys

from quorum_client import SIGNATURE_HEADER, verify_signature

SECRET = os.environ["QUORUM_WEBHOOK_SECRET"]
SEEN: set = set()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not verify_signature(self.headers.get(SIGNATURE_HEADER, ""), body, SECRET):
            self.send_response(400)
            self.end_headers()
            return
        event = json.loads(body)
        if event["id"] not in SEEN:
            SEEN.add(event["id"])
            print(event["type"], json.dumps(event["data"], ensure_ascii=False))
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Receiver).serve_forever()
