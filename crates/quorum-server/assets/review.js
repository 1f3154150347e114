// The review queue: one item at a time, a verdict per response, a correction when needed —
// through the JSON API, so every rule and error message is the API's own.
"use strict";
(() => {
  const root = document.getElementById("review");
  const { project, csrf } = root.dataset;
  const status = document.getElementById("review-status");
  const box = document.getElementById("review-item");
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    node.append(...children);
    return node;
  };
  async function api(method, path, body) {
    const response = await fetch(path, {
      method, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed = {};
    try { parsed = JSON.parse(text); } catch (_) { parsed = { error: { message: text } }; }
    return { status: response.status, body: parsed };
  }
  const show = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 1));

  async function load() {
    const result = await api("GET", `/api/v1/projects/${project}/review-queue?limit=1`);
    if (result.status !== 200) { status.textContent = result.body.error.message; status.className = "error"; return; }
    const task = result.body.items[0];
    if (!task) {
      status.textContent = "";
      box.replaceChildren(el("section", { class: "card" }, el("h2", { text: "Nothing to review" }),
        el("p", { class: "muted", text: "No item waits for review under the project's rules." })));
      return;
    }
    status.textContent = `Item ${task.external_id || task.item_id} · in the queue for: ${task.reasons.join(", ").replace(/_/g, " ")}`;
    status.className = "muted";
    const fields = el("section", { class: "card" }, el("h2", { text: "Item" }));
    for (const [name, value] of Object.entries(task.fields)) {
      fields.append(el("h3", { text: name }), el("div", { class: "prewrap", dir: "auto", text: show(value) }));
    }
    const consensus = {};
    const agreed = el("ul");
    for (const c of task.consensus) {
      consensus[c.question] = c.answer;
      agreed.append(el("li", { text: `${c.question}: ${show(c.answer)} (${Math.round(c.confidence * 100)}%, ${c.method})` }));
    }
    const rows = el("tbody");
    for (const r of task.responses) {
      const choices = el("div", { class: "verdicts" });
      for (const verdict of ["accept", "reject", "correct"]) {
        const input = el("input", { type: "radio", name: `v${r.response_id}`, value: verdict });
        if ((r.verdict || "accept") === verdict) input.checked = true;
        choices.append(el("label", { class: "choice" }, input, verdict));
      }
      rows.append(el("tr", { "data-response": r.response_id },
        el("td", { text: r.user_name }), el("td", { class: "mono", text: show(r.answers) }), el("td", {}, choices)));
    }
    const correction = el("textarea", { id: "correction", class: "mono", rows: "4" });
    correction.value = JSON.stringify(consensus, null, 1);
    const submit = el("button", { type: "button", class: "primary", text: "Save verdicts" });
    const verdictBox = el("section", { class: "card" }, el("h2", { text: "Responses" }),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "Rater" }), el("th", { text: "Answers" }), el("th", { text: "Verdict" }))), rows),
      el("label", { for: "correction" }, "Corrected answers (used for responses marked correct)", correction),
      submit);
    box.replaceChildren(fields, el("section", { class: "card" }, el("h2", { text: "Consensus" }), agreed), verdictBox);
    submit.addEventListener("click", async () => {
      let answers = null;
      const verdicts = [];
      for (const row of rows.children) {
        const verdict = row.querySelector("input:checked").value;
        const entry = { response_id: Number(row.dataset.response), verdict };
        if (verdict === "correct") {
          if (answers === null) {
            try { answers = JSON.parse(correction.value); } catch (err) { status.textContent = `The correction is not JSON: ${err.message}`; status.className = "error"; return; }
          }
          entry.answers = answers;
        }
        verdicts.push(entry);
      }
      const saved = await api("POST", `/api/v1/projects/${project}/reviews`, { item_id: task.item_id, verdicts });
      if (saved.status === 201) return load();
      status.textContent = saved.body.error.message;
      status.className = "error";
    });
  }
  load();
})();
