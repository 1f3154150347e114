"""A client for Quorum's HTTP API (``/api/v1``).

>>> from quorum_client import Client
>>> quorum = Client("http://127.0.0.1:8080", token="qrm_…")
>>> project = quorum.create_project("sentiment", schema)
>>> quorum.import_items(project["id"], [{"external_id": "1", "fields": {"text": "…"}}])

Only the standard library is needed; ``export_dataframe`` uses pandas or polars when installed.
"""

from .client import Client, QuorumError
from .signature import SIGNATURE_HEADER, verify_signature

__all__ = ["Client", "QuorumError", "SIGNATURE_HEADER", "verify_signature"]
__version__ = "0.1.0"
