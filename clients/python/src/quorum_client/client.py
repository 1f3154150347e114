"""The API client: one method per operation, JSON in and out, errors as ``QuorumError``."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

Json = Dict[str, Any]


class QuorumError(Exception):
    """A refused request: the HTTP status, Quorum's stable ``code``, the message for people
    and the ``details`` that locate the problem (a field, a line, the rejected rows)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _rows(items: Any) -> Iterable[Mapping[str, Any]]:
    """Dictionaries from a list of dicts, a pandas DataFrame or a polars DataFrame."""
    if hasattr(items, "to_dicts"):  # polars
        return items.to_dicts()
    if hasattr(items, "to_dict") and hasattr(items, "columns"):  # pandas
        return items.to_dict(orient="records")
    return items


class Client:
    """A connection to one Quorum server as one user (an API token)."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- plumbing -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Optional[Mapping[str, Any]] = None,
        data: Optional[bytes] = None,
        content_type: str = "application/json",
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any:
        response = self._open(method, path, body, params, data, content_type, headers)
        with response:
            payload = response.read()
        if not payload:
            return None
        return json.loads(payload)

    def _open(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Optional[Mapping[str, Any]] = None,
        data: Optional[bytes] = None,
        content_type: str = "application/json",
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any:
        url = f"{self.url}{path}"
        if params:
            query = {k: v for k, v in params.items() if v is not None}
            if query:
                url += "?" + urllib.parse.urlencode(query)
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                detail = json.loads(raw)["error"]
                raise QuorumError(
                    error.code, detail.get("code", ""), detail.get("message", ""), detail.get("details")
                ) from None
            except (ValueError, KeyError, TypeError):
                raise QuorumError(error.code, "http", raw.decode(errors="replace")) from None

    # -- accounts -------------------------------------------------------------------------

    def me(self) -> Json:
        """The caller's account."""
        return self._request("GET", "/api/v1/me")["user"]

    def create_user(self, name: str, password: str, admin: bool = False) -> Json:
        """A new account (administrators)."""
        body = {"name": name, "password": password, "admin": admin}
        return self._request("POST", "/api/v1/users", body)["user"]

    def create_token(self, user_id: int, name: str = "api", expires_at: Optional[int] = None) -> str:
        """A new API token for a user, shown this once."""
        body: Json = {"name": name}
        if expires_at is not None:
            body["expires_at"] = expires_at
        return self._request("POST", f"/api/v1/users/{user_id}/tokens", body)["token"]

    # -- projects and items ---------------------------------------------------------------

    def create_project(self, name: str, schema: Mapping[str, Any], **settings: Any) -> Json:
        """A new project (administrators): ``overlap``, ``instructions``, ``lease_seconds``,
        ``locale_policy``, ``min_overlap``, ``target_confidence``, ``quality`` as keywords."""
        body = {"name": name, "schema": schema, **settings}
        return self._request("POST", "/api/v1/projects", body)["project"]

    def projects(self) -> Iterator[Json]:
        """Every project the caller can see, page by page."""
        after = 0
        while True:
            page = self._request("GET", "/api/v1/projects", params={"after": after, "limit": 500})
            yield from page["projects"]
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def project(self, project_id: int) -> Json:
        """A project and the caller's role in it: ``{"project": …, "role": …}``."""
        return self._request("GET", f"/api/v1/projects/{project_id}")

    def add_member(
        self,
        project_id: int,
        user: str,
        role: str,
        locales: Sequence[str] = (),
        skills: Sequence[str] = (),
    ) -> Json:
        """Adds (or updates) a member: ``annotator``, ``reviewer`` or ``manager``."""
        body = {"user": user, "role": role, "locales": list(locales), "skills": list(skills)}
        return self._request("POST", f"/api/v1/projects/{project_id}/members", body)["member"]

    def import_items(self, project_id: int, items: Any) -> Json:
        """Imports items — a list of dicts, or a pandas or polars DataFrame with the columns
        ``external_id``, ``fields`` (a dict), and optionally ``metadata``, ``gold``,
        ``suggestions``, ``priority`` — as JSON Lines. All rows or none: a refused row raises
        ``QuorumError`` with ``details["rejected"]``. Returns ``{"created", "updated"}``."""
        return self._post_lines(project_id, items, None)

    def _post_lines(self, project_id: int, rows: Any, format: Optional[str]) -> Json:
        lines = "".join(json.dumps(dict(row), default=str) + "\n" for row in _rows(rows))
        return self._request(
            "POST",
            f"/api/v1/projects/{project_id}/items",
            data=lines.encode(),
            content_type="application/x-ndjson",
            params={"format": format},
        )

    def import_preference_pairs(self, project_id: int, pairs: Any) -> Json:
        """Imports preference pairs — dicts (or DataFrame rows) of ``id``, ``prompt``,
        ``chosen``, ``rejected``, as the ``dpo`` export writes them — into a pairwise project:
        each becomes an item whose two answers sit on sides drawn from its id, with the
        preference as its gold answer. All rows or none."""
        return self._post_lines(project_id, pairs, "dpo")

    def import_parquet(self, project_id: int, path: str) -> Json:
        """Imports items from a Parquet file with CSV's columns (``external_id``, ``priority``,
        ``locale``, ``category``, one per schema field, ``metadata.KEY``, ``gold.QUESTION``,
        ``suggestion.QUESTION``; text, number or boolean columns). All rows or none."""
        with open(path, "rb") as file:
            data = file.read()
        return self._request(
            "POST",
            f"/api/v1/projects/{project_id}/items",
            data=data,
            content_type="application/vnd.apache.parquet",
        )

    def stats(self, project_id: int) -> Json:
        """Items by state, responses, live leases, raters."""
        return self._request("GET", f"/api/v1/projects/{project_id}/stats")["stats"]

    # -- the rater loop -------------------------------------------------------------------

    def next(self, project_id: int) -> Optional[Json]:
        """The caller's next assignment (``{"lease", "item"}``), or ``None`` when nothing is
        left for them."""
        return self._request("POST", f"/api/v1/projects/{project_id}/next")

    def submit(
        self,
        lease_id: int,
        answers: Mapping[str, Any],
        time_spent_ms: int = 0,
        idempotency_key: Optional[str] = None,
        next: bool = False,
    ) -> Json:
        """Answers a leased item. With ``idempotency_key`` a retry returns the first reply;
        with ``next`` the reply also carries the rater's next assignment."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request(
            "POST",
            f"/api/v1/leases/{lease_id}/response",
            {"answers": dict(answers), "time_spent_ms": time_spent_ms},
            params={"next": "true"} if next else None,
            headers=headers,
        )

    def skip(self, lease_id: int) -> None:
        """Skips a leased item; it is never offered to the caller again."""
        self._request("POST", f"/api/v1/leases/{lease_id}/skip")

    # -- results --------------------------------------------------------------------------

    def export(self, project_id: int, format: str = "jsonl") -> Iterator[Json]:
        """The project's rows, streamed: every response (``jsonl``), preference pairs
        (``dpo``), conversations (``sft``) or each item's consensus (``consensus``)."""
        if format in ("csv", "parquet"):
            raise ValueError("export() yields rows; use export_csv() or export_parquet()")
        response = self._open("GET", f"/api/v1/projects/{project_id}/export", params={"format": format})
        with response:
            for line in response:
                if line.strip():
                    yield json.loads(line)

    def export_csv(self, project_id: int) -> str:
        """Every response as CSV text."""
        response = self._open("GET", f"/api/v1/projects/{project_id}/export", params={"format": "csv"})
        with response:
            return response.read().decode()

    def _parquet_params(self, format: str) -> Json:
        """The query that asks for ``format`` as Parquet: ``parquet`` (every response) or an
        aggregate (``dpo``, ``sft``, ``consensus``) with ``file=parquet``."""
        if format == "parquet":
            return {"format": "parquet"}
        if format in ("dpo", "sft", "consensus"):
            return {"format": format, "file": "parquet"}
        raise ValueError("Parquet holds parquet (every response), dpo, sft or consensus")

    def export_parquet(self, project_id: int, path: str, format: str = "parquet") -> int:
        """An export as a Parquet file at ``path``; the bytes written. ``parquet``: every
        response, with a typed column per question (``answer_<question>``); ``dpo``: TRL's
        ``prompt``, ``chosen``, ``rejected``; ``sft``: ``messages`` as a list of
        ``{role, content}``; ``consensus``: each item's answer per question."""
        params = self._parquet_params(format)
        response = self._open("GET", f"/api/v1/projects/{project_id}/export", params=params)
        written = 0
        with response, open(path, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                written += len(chunk)
        return written

    def export_dataframe(self, project_id: int, format: str = "parquet", library: str = "pandas") -> Any:
        """An export as a pandas (default) or polars DataFrame, through Parquet (typed columns;
        pandas needs pyarrow for it): every response (``parquet``, ``answer_<question>`` per
        question), ``dpo``, ``sft`` or ``consensus``; ``jsonl`` gives the responses as JSON
        rows instead."""
        if library not in ("pandas", "polars"):
            raise ValueError("library is pandas or polars")
        if format == "jsonl":
            rows = list(self.export(project_id, format))
            if library == "pandas":
                import pandas

                return pandas.DataFrame(rows)
            import polars

            return polars.DataFrame(rows)
        import io

        params = self._parquet_params(format)
        response = self._open("GET", f"/api/v1/projects/{project_id}/export", params=params)
        with response:
            data = io.BytesIO(response.read())
        if library == "pandas":
            import pandas

            return pandas.read_parquet(data)
        import polars

        return polars.read_parquet(data)

    def dataset_card(
        self, project_id: int, format: str = "jsonl", license: str = "other", file: Optional[str] = None
    ) -> str:
        """A dataset card for an export (Markdown with the YAML front matter the Hugging Face
        Hub reads): save it as ``README.md`` next to the export saved as ``data.jsonl`` (or
        ``data.parquet``: ``format="parquet"``, or ``file="parquet"`` for ``dpo``, ``sft`` and
        ``consensus``)."""
        params = {"format": format, "license": license}
        if file is not None:
            params["file"] = file
        response = self._open("GET", f"/api/v1/projects/{project_id}/card", params=params)
        with response:
            return response.read().decode()

    def consensus(self, project_id: int, method: Optional[str] = None) -> List[Json]:
        """Each item's consensus per question, with its confidence."""
        path = f"/api/v1/projects/{project_id}/consensus"
        return self._request("GET", path, params={"method": method})["consensus"]

    def agreement(self, project_id: int) -> List[Json]:
        """Agreement per question (Krippendorff's alpha overall and per rater locale, …)."""
        return self._request("GET", f"/api/v1/projects/{project_id}/agreement")["agreement"]

    def raters(self, project_id: int) -> List[Json]:
        """How far each rater can be trusted."""
        return self._request("GET", f"/api/v1/projects/{project_id}/raters")["raters"]

    def leaderboard(self, project_id: int, **params: Any) -> Json:
        """The arena board of a battle project (``bootstrap``, ``seed``, ``anchor``,
        ``min_battles``, ``slice_by``)."""
        return self._request("GET", f"/api/v1/projects/{project_id}/leaderboard", params=params)["leaderboard"]

    # -- standards ------------------------------------------------------------------------

    def run_standard(self, standard_toml: str, models: Sequence[str], concurrency: int = 4) -> Json:
        """Runs an evaluation standard sent as TOML (administrators)."""
        return self._request(
            "POST",
            "/api/v1/standards",
            params={"models": ",".join(models), "concurrency": concurrency},
            data=standard_toml.encode(),
            content_type="text/plain",
        )

    def standards(self) -> List[Json]:
        """The standards run here, newest first, each with what it still needs."""
        return self._request("GET", "/api/v1/standards")["standards"]

    def standard_report(self, standard_hash: str) -> Json:
        """The signed report of a standard's latest run: ``{"report", "signature"}``."""
        path = f"/api/v1/standards/{urllib.parse.quote(standard_hash, safe='')}/report"
        return self._request("GET", path)

    # -- webhooks -------------------------------------------------------------------------

    def create_webhook(self, project_id: Optional[int], url: str, events: Sequence[str]) -> Json:
        """Subscribes ``url`` to a project's events (instance-wide with ``project_id=None``,
        administrators). Returns ``{"webhook", "secret"}``: the secret is shown this once."""
        path = "/api/v1/webhooks" if project_id is None else f"/api/v1/projects/{project_id}/webhooks"
        return self._request("POST", path, {"url": url, "events": list(events)})

    def webhooks(self, project_id: Optional[int]) -> List[Json]:
        """A project's subscriptions (instance-wide ones with ``project_id=None``)."""
        path = "/api/v1/webhooks" if project_id is None else f"/api/v1/projects/{project_id}/webhooks"
        return self._request("GET", path)["webhooks"]

    def deliveries(self, webhook_id: int, before: Optional[int] = None, limit: int = 100) -> List[Json]:
        """A subscription's delivery log, newest first."""
        params = {"before": before, "limit": limit}
        return self._request("GET", f"/api/v1/webhooks/{webhook_id}/deliveries", params=params)["deliveries"]

    def redeliver(self, webhook_id: int, delivery_id: Optional[int] = None) -> int:
        """Queues failed deliveries again (one, or all); how many."""
        body = {} if delivery_id is None else {"delivery_id": delivery_id}
        return self._request("POST", f"/api/v1/webhooks/{webhook_id}/redeliver", body)["queued"]

    def rotate_webhook_secret(self, webhook_id: int, overlap_ms: Optional[int] = None) -> Json:
        """A new secret (``{"webhook", "secret"}``); the old one signs too during the overlap."""
        body = {} if overlap_ms is None else {"overlap_ms": overlap_ms}
        return self._request("POST", f"/api/v1/webhooks/{webhook_id}/rotate", body)

    def delete_webhook(self, webhook_id: int) -> None:
        """Ends a subscription."""
        self._request("DELETE", f"/api/v1/webhooks/{webhook_id}")
