#!/usr/bin/env python3
"""Huddle01 (seeds/002): the document's Python verifier and Flask handler, line by line.

Reads [{secret, headers, body}] as JSON from stdin; prints one line per item: ``ok`` or
``fail <why>``. ``request.data`` is the raw body bytes and ``request.json`` its parse, as Flask
gives them.
"""

import hashlib
import hmac
import json
import sys


def verify_webhook(payload: bytes, signature: str, secret: str) -> bool:
    expected = hmac.new(
        secret.encode('utf-8'),
        payload,
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(signature, expected)


class Headers(dict):
    """Case-insensitive, like Flask's request.headers."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)


class Request:
    def __init__(self, item):
        self.headers = Headers({k.lower(): v for k, v in item["headers"].items()})
        self.data = item["body"].encode("utf-8")
        self.json = json.loads(self.data)


def handle_webhook(request, WEBHOOK_SECRET):
    signature = request.headers.get('X-Webhook-Signature')
    if not verify_webhook(request.data, signature, WEBHOOK_SECRET):
        return 'Invalid signature', 401

    event = request.json
    print(f"Event: {event['event']}", file=sys.stderr)
    return 'OK', 200


def main() -> int:
    try:
        items = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        print(f"bad input: {e}")
        return 2
    for item in items:
        try:
            body, status = handle_webhook(Request(item), item["secret"])
            print("ok" if status == 200 else f"fail answered {status} {body}")
        except Exception as e:  # noqa: BLE001 - report whatever the snippet raised
            print(f"fail raised {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
