"""Checking a webhook delivery's ``Quorum-Signature`` header."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional

SIGNATURE_HEADER = "Quorum-Signature"
"""The header every delivery carries: ``t=<Unix seconds>,v1=<hex>[,v1=<hex>]``."""


def verify_signature(
    header: str,
    body: bytes,
    secret: str,
    tolerance: int = 300,
    now: Optional[float] = None,
) -> bool:
    """Whether ``header`` signs ``body`` (the raw bytes, before parsing) with ``secret``.

    The signature is the HMAC-SHA256 of ``"{t}.{body}"``; during a secret's rotation the header
    carries one ``v1`` per valid secret, and any may match. A timestamp more than
    ``tolerance`` seconds from ``now`` is refused, so an old delivery cannot be replayed.
    """
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in parts if key == "t"]
    if not timestamps or not timestamps[0].isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamps[0])) > tolerance:
        return False
    signed = timestamps[0].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in parts if key == "v1")
