"""The client against a real `quorum serve` (QUORUM_URL, QUORUM_TOKEN of an administrator);
the Rust test `python_client` starts one and runs these. Nothing here is mocked."""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import time
import unittest
import uuid
from typing import Any, List

from quorum_client import Client, QuorumError, SIGNATURE_HEADER, verify_signature

SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "label", "kind": "label", "options": ["pos", "neg"], "required": True}],
}


def admin() -> Client:
    url, token = os.environ.get("QUORUM_URL"), os.environ.get("QUORUM_TOKEN")
    if not url or not token:
        raise unittest.SkipTest("QUORUM_URL and QUORUM_TOKEN name a running server")
    return Client(url, token)


def rater(quorum: Client, project_id: int) -> Client:
    name = f"rater-{uuid.uuid4().hex[:8]}"
    user = quorum.create_user(name, "password123")
    quorum.add_member(project_id, name, "annotator")
    return Client(quorum.url, quorum.create_token(user["id"]))


def answer_all(client: Client, project_id: int, label: str) -> int:
    answered = 0
    while (assignment := client.next(project_id)) is not None:
        client.submit(assignment["lease"]["id"], {"label": label}, time_spent_ms=900)
        answered += 1
    return answered


class Projects(unittest.TestCase):
    def test_a_project_is_made_filled_answered_and_exported(self) -> None:
        quorum = admin()
        project = quorum.create_project("py-items", SCHEMA, overlap=2)
        items = [{"external_id": f"i{i}", "fields": {"text": f"text {i}"}} for i in range(5)]
        self.assertEqual(quorum.import_items(project["id"], items)["created"], 5)
        self.assertIn(project["id"], [p["id"] for p in quorum.projects()])
        self.assertEqual(quorum.project(project["id"])["role"], "manager")

        first, second = rater(quorum, project["id"]), rater(quorum, project["id"])
        self.assertEqual(answer_all(first, project["id"], "pos"), 5)
        self.assertEqual(answer_all(second, project["id"], "neg"), 5)
        self.assertIsNone(first.next(project["id"]))
        stats = quorum.stats(project["id"])
        self.assertEqual((stats["responses"], stats["items_complete"]), (10, 5))

        rows = list(quorum.export(project["id"]))
        self.assertEqual(len(rows), 10)
        self.assertEqual({r["answers"]["label"] for r in rows}, {"pos", "neg"})
        self.assertEqual(quorum.export_csv(project["id"]).count("\n"), 11)
        consensus = quorum.consensus(project["id"], method="mv")
        self.assertEqual(len(consensus), 5)
        self.assertTrue(all(c["question"] == "label" for c in consensus))
        self.assertEqual(quorum.agreement(project["id"])[0]["question"], "label")
        self.assertEqual(len(quorum.raters(project["id"])), 2)
        card = quorum.dataset_card(project["id"], format="parquet", license="cc-by-4.0")
        self.assertTrue(card.startswith("---\nlicense: cc-by-4.0\n"), card)
        self.assertIn("5 items were answered by 2 raters (10 answers", card)

    def test_dataframes_go_in_and_come_out(self) -> None:
        try:
            import pandas
        except ImportError:
            self.skipTest("pandas is not installed")
        quorum = admin()
        project = quorum.create_project("py-frames", SCHEMA)
        frame = pandas.DataFrame(
            {"external_id": ["a", "b"], "fields": [{"text": "one"}, {"text": "two"}]}
        )
        self.assertEqual(quorum.import_items(project["id"], frame)["created"], 2)
        answer_all(rater(quorum, project["id"]), project["id"], "pos")
        exported = quorum.export_dataframe(project["id"], format="jsonl")
        self.assertEqual(sorted(exported["external_id"]), ["a", "b"])
        try:
            import pyarrow  # noqa: F401 (pandas reads Parquet through it)
        except ImportError:
            pass
        else:
            typed = quorum.export_dataframe(project["id"])
            self.assertEqual(sorted(typed["answer_label"]), ["pos", "pos"])
        try:
            import polars
        except ImportError:
            return
        as_polars = quorum.export_dataframe(project["id"], library="polars")
        self.assertIsInstance(as_polars, polars.DataFrame)
        self.assertEqual(as_polars.height, 2)

    def test_refusals_say_what_and_where(self) -> None:
        quorum = admin()
        with self.assertRaises(QuorumError) as refused:
            quorum.create_project("bad", {"fields": [], "questions": []}, overlap=0)
        self.assertEqual(refused.exception.status, 422)
        project = quorum.create_project("py-bad-items", SCHEMA)
        with self.assertRaises(QuorumError) as refused:
            quorum.import_items(project["id"], [{"external_id": "x", "fields": {"nope": 1}}])
        self.assertEqual(refused.exception.code, "rows_rejected")
        self.assertEqual(refused.exception.details["rejected"][0]["row"], 1)
        self.assertEqual(quorum.stats(project["id"])["items"], 0)
        with self.assertRaises(QuorumError) as missing:
            quorum.project(10**9)
        self.assertEqual(missing.exception.status, 404)


PARQUET_SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [
        {"name": "label", "kind": "label", "options": ["pos", "neg"], "required": True},
        {"name": "stars", "kind": "rating", "min": 1, "max": 5},
        {"name": "tags", "kind": "multi_label", "options": ["a", "b", "c"]},
        {"name": "note", "kind": "text"},
    ],
}


def read_everywhere(path: str, check: Any) -> List[str]:
    """Reads the Parquet file at ``path`` with each installed reader (pyarrow, polars, DuckDB,
    Hugging Face datasets), hands its rows as dicts to ``check(rows, reader)``; the readers
    that read it."""
    import tempfile

    read = []
    try:
        import pyarrow.parquet

        check(pyarrow.parquet.read_table(path).to_pylist(), "pyarrow")
        read.append("pyarrow")
    except ImportError:
        pass
    try:
        import polars

        check(polars.read_parquet(path).to_dicts(), "polars")
        read.append("polars")
    except ImportError:
        pass
    try:
        import duckdb

        cursor = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
        names = [c[0] for c in cursor.description]
        check([dict(zip(names, values)) for values in cursor.fetchall()], "duckdb")
        read.append("duckdb")
    except ImportError:
        pass
    try:
        os.environ["HF_DATASETS_OFFLINE"] = "1"
        import datasets

        loaded = datasets.load_dataset(
            "parquet", data_files=path, split="train", cache_dir=tempfile.mkdtemp()
        )
        check(list(loaded), "datasets")
        read.append("datasets")
    except ImportError:
        pass
    print(f"\n{os.path.basename(path)} read by: {', '.join(read) or 'nothing installed'}", file=sys.stderr)
    return read


class Parquet(unittest.TestCase):
    """Quorum's Parquet read by pyarrow, polars, DuckDB and Hugging Face datasets: the same
    rows and values as the JSON Lines export, with typed answer columns."""

    def test_the_parquet_export_reads_everywhere(self) -> None:
        import tempfile

        quorum = admin()
        project = quorum.create_project("py-parquet", PARQUET_SCHEMA, overlap=2)
        items = [{"external_id": f"p{i}", "fields": {"text": f"text {i}"}} for i in range(6)]
        quorum.import_items(project["id"], items)
        for label, stars, tags in (("pos", 5, ["a", "c"]), ("neg", None, [])):
            client = rater(quorum, project["id"])
            while (assignment := client.next(project["id"])) is not None:
                answers = {"label": label, "tags": tags, "note": "fine"}
                if stars is not None:
                    answers["stars"] = stars
                client.submit(assignment["lease"]["id"], answers)
        expected = {
            row["response_id"]: row for row in quorum.export(project["id"])
        }
        self.assertEqual(len(expected), 12)
        path = os.path.join(tempfile.mkdtemp(), "responses.parquet")
        self.assertGreater(quorum.export_parquet(project["id"], path), 0)

        def check(rows: list, reader: str) -> None:
            self.assertEqual(len(rows), 12, reader)
            for row in rows:
                want = expected[row["response_id"]]
                self.assertEqual(row["external_id"], want["external_id"], reader)
                self.assertEqual(row["user"], want["user"], reader)
                self.assertEqual(row["answer_label"], want["answers"]["label"], reader)
                self.assertEqual(row["answer_stars"], want["answers"].get("stars"), reader)
                self.assertEqual(list(row["answer_tags"]), want["answers"]["tags"], reader)
                self.assertEqual(json.loads(row["answers"]), want["answers"], reader)
                self.assertEqual(row["time_spent_ms"], want["time_spent_ms"], reader)

        read = read_everywhere(path, check)
        if "pyarrow" in read:
            import pyarrow.parquet

            schema = pyarrow.parquet.read_schema(path)
            self.assertEqual(str(schema.field("answer_stars").type), "int64")
            self.assertEqual(str(schema.field("created_at").type), "timestamp[ms, tz=UTC]")
            self.check_parquet_import(quorum)
        if not read:
            self.skipTest("none of pyarrow, polars, duckdb, datasets is installed")

        # The project's consensus as Parquet: the same rows as the JSON Lines export.
        consensus = {
            (row["item_id"], row["question"]): row
            for row in quorum.export(project["id"], "consensus")
        }
        self.assertIn("label", {question for _, question in consensus})

        def check_consensus(rows: list, reader: str) -> None:
            self.assertEqual(len(rows), len(consensus), reader)
            for row in rows:
                want = consensus[(row["item_id"], row["question"])]
                answer = want["answer"]
                self.assertEqual(
                    row["answer"], answer if isinstance(answer, str) else json.dumps(answer, separators=(",", ":"), ensure_ascii=False),
                    reader,
                )
                self.assertAlmostEqual(row["confidence"], want["confidence"], 9, reader)
                self.assertEqual((row["method"], row["responses"]), (want["method"], want["responses"]), reader)

        path = os.path.join(os.path.dirname(path), "consensus.parquet")
        self.assertGreater(quorum.export_parquet(project["id"], path, "consensus"), 0)
        self.assertEqual(read_everywhere(path, check_consensus), read)

    def test_preference_pairs_and_conversations_come_as_parquet(self) -> None:
        """DPO pairs with TRL's columns and SFT conversations with ``messages`` as a list of
        ``{role, content}``, read by every reader and as DataFrames."""
        import tempfile

        quorum = admin()
        pairwise = {
            "fields": [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "responses"}],
            "questions": [{"name": "preference", "kind": "pairwise", "required": True}],
        }
        dpo = quorum.create_project("py-dpo", pairwise)["id"]
        pairs = [
            {"id": f"d{i}", "prompt": f"prompt {i}", "chosen": f"good {i}", "rejected": f"bad {i}"}
            for i in range(25)
        ]
        self.assertEqual(quorum.import_preference_pairs(dpo, pairs)["created"], 25)
        path = os.path.join(tempfile.mkdtemp(), "dpo.parquet")
        self.assertGreater(quorum.export_parquet(dpo, path, "dpo"), 0)
        by_id = {p["id"]: p for p in pairs}

        def check_pairs(rows: list, reader: str) -> None:
            self.assertEqual(len(rows), 25, reader)
            for row in rows:
                want = by_id[row["id"]]
                self.assertEqual(
                    (row["prompt"], row["chosen"], row["rejected"]),
                    (want["prompt"], want["chosen"], want["rejected"]),
                    reader,
                )
                self.assertEqual((row["source"], row["votes"], row["confidence"]), ("gold", 0, None), reader)

        read = read_everywhere(path, check_pairs)
        if not read:
            self.skipTest("none of pyarrow, polars, duckdb, datasets is installed")

        chat = {
            "fields": [{"name": "chat", "kind": "chat"}],
            "questions": [{"name": "reply", "kind": "text", "required": True}],
        }
        project = quorum.create_project("py-sft", chat, overlap=2)
        turns = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "مرحبا"}]
        quorum.import_items(project["id"], [{"external_id": f"s{i}", "fields": {"chat": turns}} for i in range(3)])
        writers = [rater(quorum, project["id"]) for _ in range(2)]
        for writer in writers:
            while (assignment := writer.next(project["id"])) is not None:
                writer.submit(assignment["lease"]["id"], {"reply": "أهلاً! How can I help?"})
        expected = list(quorum.export(project["id"], "sft"))
        self.assertEqual(len(expected), 6)
        path = os.path.join(os.path.dirname(path), "sft.parquet")
        self.assertGreater(quorum.export_parquet(project["id"], path, "sft"), 0)

        def check_conversations(rows: list, reader: str) -> None:
            self.assertEqual(len(rows), 6, reader)
            got = sorted((r["id"], r["user"], [dict(m) for m in r["messages"]]) for r in rows)
            want = sorted((r["id"], r["user"], r["messages"]) for r in expected)
            self.assertEqual(got, want, reader)

        self.assertEqual(read_everywhere(path, check_conversations), read)
        if "pyarrow" in read:
            frame = quorum.export_dataframe(project["id"], "sft")
            self.assertEqual(len(frame), 6)
            self.assertEqual(list(frame["messages"][0][2].values()), ["assistant", "أهلاً! How can I help?"])
        try:
            import polars
        except ImportError:
            return
        pairs_frame = quorum.export_dataframe(dpo, "dpo", library="polars")
        self.assertIsInstance(pairs_frame, polars.DataFrame)
        self.assertEqual(pairs_frame.columns[:4], ["id", "prompt", "chosen", "rejected"])

    def check_parquet_import(self, quorum: Client) -> None:
        """Items from a Parquet file pyarrow writes, with CSV's columns; a nested column is
        refused by name and nothing is written."""
        import tempfile

        import pyarrow
        import pyarrow.parquet

        project = quorum.create_project("py-parquet-in", SCHEMA)
        table = pyarrow.table(
            {
                "external_id": ["x1", "x2", "x3"],
                "text": ["one", "two", "three"],
                "locale": ["ar-QA", "en-GB", None],
                "priority": pyarrow.array([3, 1, 2], pyarrow.int64()),
                "gold.label": [None, "pos", None],
            }
        )
        path = os.path.join(tempfile.mkdtemp(), "items.parquet")
        pyarrow.parquet.write_table(table, path)
        self.assertEqual(quorum.import_parquet(project["id"], path)["created"], 3)
        client = rater(quorum, project["id"])
        first = client.next(project["id"])
        self.assertEqual(first["item"]["fields"], {"text": "one"})
        self.assertEqual(first["item"]["metadata"], {"locale": "ar-QA"})
        nested = pyarrow.table({"external_id": ["n"], "text": [["a", "b"]]})
        pyarrow.parquet.write_table(nested, path)
        other = quorum.create_project("py-parquet-nested", SCHEMA)
        with self.assertRaises(QuorumError) as refused:
            quorum.import_parquet(other["id"], path)
        self.assertEqual(refused.exception.status, 422)
        self.assertEqual(refused.exception.details["column"], "text")
        self.assertEqual(quorum.stats(other["id"])["items"], 0)


class Receiver(http.server.BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((self.headers[SIGNATURE_HEADER], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Webhooks(unittest.TestCase):
    def test_events_arrive_signed_and_the_log_says_so(self) -> None:
        quorum = admin()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        project = quorum.create_project("py-hooks", SCHEMA)
        quorum.import_items(project["id"], [{"external_id": "h", "fields": {"text": "t"}}])
        created = quorum.create_webhook(project["id"], url, ["response.created", "item.completed"])
        secret, hook = created["secret"], created["webhook"]
        self.assertEqual([w["id"] for w in quorum.webhooks(project["id"])], [hook["id"]])
        answer_all(rater(quorum, project["id"]), project["id"], "pos")
        deadline = time.time() + 20
        while len(Receiver.got) < 2 and time.time() < deadline:
            time.sleep(0.05)
        server.shutdown()
        server.server_close()
        self.assertEqual(len(Receiver.got), 2)
        for header, body in Receiver.got:
            self.assertTrue(verify_signature(header, body, secret))
            self.assertFalse(verify_signature(header, body, "whsec_other"))
            self.assertFalse(verify_signature(header, body + b" ", secret))
        types = sorted(json.loads(body)["type"] for _, body in Receiver.got)
        self.assertEqual(types, ["item.completed", "response.created"])
        deadline = time.time() + 10
        log = quorum.deliveries(hook["id"])
        while not all(d["state"] == "delivered" for d in log) and time.time() < deadline:
            time.sleep(0.05)
            log = quorum.deliveries(hook["id"])
        self.assertEqual([d["state"] for d in log], ["delivered", "delivered"])
        rotated = quorum.rotate_webhook_secret(hook["id"], overlap_ms=60_000)
        self.assertNotEqual(rotated["secret"], secret)
        quorum.delete_webhook(hook["id"])
        self.assertEqual(quorum.webhooks(project["id"]), [])


if __name__ == "__main__":
    unittest.main()
