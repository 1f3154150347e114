"""An LLM as a rater: leases items from a project and answers its first label question with a
model behind an OpenAI-compatible chat-completions endpoint.

    QUORUM_URL=http://127.0.0.1:8080 QUORUM_TOKEN=<a rater's token> \
    LLM_URL=https://api.example.com/v1 LLM_KEY=... LLM_MODEL=some-model \
    python examples/llm_rater.py PROJECT_ID
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

from quorum_client import Client


def ask(prompt: str) -> str:
    request = urllib.request.Request(
        os.environ["LLM_URL"].rstrip("/") + "/chat/completions",
        data=json.dumps(
            {"model": os.environ["LLM_MODEL"], "messages": [{"role": "user", "content": prompt}]}
        ).encode(),
        headers={"Authorization": f"Bearer {os.environ['LLM_KEY']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["choices"][0]["message"]["content"].strip()


def main(project_id: int) -> None:
    quorum = Client(os.environ["QUORUM_URL"], os.environ["QUORUM_TOKEN"])
    schema = quorum.project(project_id)["project"]["schema"]
    question = next(q for q in schema["questions"] if q["kind"] == "label")
    options = question["options"]
    while (assignment := quorum.next(project_id)) is not None:
        started = time.time()
        fields = json.dumps(assignment["item"]["fields"], ensure_ascii=False)
        reply = ask(f"{question.get('instructions', '')}\n{fields}\nAnswer with one of: {', '.join(options)}.")
        label = next((o for o in options if o.lower() in reply.lower()), None)
        lease = assignment["lease"]["id"]
        if label is None:
            quorum.skip(lease)
            continue
        quorum.submit(lease, {question["name"]: label}, int((time.time() - started) * 1000), idempotency_key=str(lease))


if __name__ == "__main__":
    main(int(sys.argv[1]))
