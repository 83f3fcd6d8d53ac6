#!/usr/bin/env python3
"""Verify hookd webhook signatures with the public Standard Webhooks library.

Reads a JSON array from stdin:
    [{"secret": "whsec_...", "headers": {"webhook-id": ..., ...}, "body": "<raw body>",
      "expect": "ok"}, ...]
and checks every item with ``standardwebhooks.webhooks.Webhook(secret).verify(body, headers)``,
the library's own, unchanged behaviour (including its 5-minute timestamp tolerance).

``expect`` is optional: ``"ok"`` (the default) wants the item verified, ``"fail"`` wants the
library to reject it (a tampered body, a wrong secret, ...). Each expected rejection prints
``rejected I: <error type>: <message>`` so the caller can check why it was rejected.

Prints ``ok N`` last and exits 0 when all N items met their expectation; otherwise prints each
miss and exits 1. Exits 2 on unusable input or a missing library.
"""

import json
import sys


def main() -> int:
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError as e:  # pragma: no cover - depends on the environment
        print(f"standardwebhooks is not installed: {e} (pip install standardwebhooks)")
        return 2

    try:
        items = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        print(f"bad input: not JSON: {e}")
        return 2
    if not isinstance(items, list) or not items:
        print("bad input: expected a non-empty JSON array")
        return 2

    failures = []
    for i, item in enumerate(items):
        try:
            secret = item["secret"]
            headers = item["headers"]
            body = item["body"]
            expect = item.get("expect", "ok")
        except (KeyError, TypeError, AttributeError) as e:
            failures.append(f"item {i}: bad input item: {e!r}")
            continue
        if expect not in ("ok", "fail"):
            failures.append(f"item {i}: bad input item: expect must be ok or fail: {expect!r}")
            continue
        msg_id = headers.get("webhook-id") if isinstance(headers, dict) else None
        try:
            Webhook(secret).verify(body, headers)
        except Exception as e:  # noqa: BLE001 - report whatever the library raised
            if expect == "fail":
                print(f"rejected {i}: {type(e).__name__}: {e}")
            else:
                failures.append(f"item {i} (webhook-id={msg_id}): {type(e).__name__}: {e}")
            continue
        if expect == "fail":
            failures.append(f"item {i} (webhook-id={msg_id}): verified, but must be rejected")

    if failures:
        for f in failures:
            print(f"FAIL {f}")
        print(f"failed {len(failures)} of {len(items)}")
        return 1
    print(f"ok {len(items)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
