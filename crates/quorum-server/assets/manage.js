// Manager pages: create a project, import items, add members — through the JSON API, so every
// rule and error message is the API's own.
"use strict";
(() => {
  async function api(method, path, csrf, body, contentType) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": contentType || "application/json" },
      body,
    });
    const text = await response.text();
    let parsed = {};
    try { parsed = JSON.parse(text); } catch (_) { parsed = { error: { message: text } }; }
    return { status: response.status, body: parsed };
  }
  const say = (box, text, ok) => { box.textContent = text; box.className = ok ? "ok" : "error"; };

  const manage = document.getElementById("manage");
  if (manage) {
    const { project, csrf } = manage.dataset;
    const importButton = document.getElementById("import");
    if (importButton) importButton.addEventListener("click", async () => {
      const file = document.getElementById("import-file").files[0];
      const box = document.getElementById("import-result");
      if (!file) return say(box, "Choose a file first.", false);
      const type = file.name.toLowerCase().endsWith(".csv") ? "text/csv" : "application/x-ndjson";
      const result = await api("POST", `/api/v1/projects/${project}/items`, csrf, await file.text(), type);
      if (result.status === 200) {
        say(box, `Imported: ${result.body.created} created, ${result.body.updated} updated.`, true);
        return;
      }
      say(box, result.body.error.message, false);
      const rows = (result.body.error.details || {}).rejected || [];
      const list = document.createElement("ul");
      for (const r of rows.slice(0, 200)) {
        const li = document.createElement("li");
        li.textContent = `row ${r.row}: ${r.error}`;
        list.append(li);
      }
      box.append(list);
    });
    // Quality rules: the form mirrors the API's policy object; empty means off.
    const quality = document.getElementById("quality");
    if (quality) {
      const rules = JSON.parse(document.getElementById("quality-rules").textContent);
      const field = (name) => quality.elements[name];
      const put = (name, value) => { if (value !== null && value !== undefined) field(name).value = value; };
      put("gold_rate", rules.gold_rate || "");
      field("gold_feedback").checked = !!rules.gold_feedback;
      const q = rules.qualification || {};
      put("q_items", q.gold_items); put("q_accuracy", q.min_accuracy); put("q_skill", q.skill);
      const p = rules.pause || {};
      put("p_accuracy", p.min_accuracy_upper); put("p_skips", p.max_skip_rate);
      if (p.min_median_ms) field("p_seconds").value = p.min_median_ms / 1000;
      const r = rules.review || {};
      put("r_confidence", r.below_confidence); put("r_sample", r.sample_rate || "");
      field("r_disagreement").checked = !!r.disagreement;
      quality.addEventListener("submit", async (e) => {
        e.preventDefault();
        const number = (name) => (field(name).value === "" ? null : Number(field(name).value));
        const seconds = number("p_seconds");
        const body = {
          gold_rate: number("gold_rate") || 0,
          gold_feedback: field("gold_feedback").checked,
          qualification: number("q_items") === null ? null
            : { gold_items: number("q_items"), min_accuracy: number("q_accuracy") ?? 1, skill: field("q_skill").value.trim() || null },
          pause: { min_accuracy_upper: number("p_accuracy"), min_median_ms: seconds === null ? null : Math.round(seconds * 1000), max_skip_rate: number("p_skips") },
          review: { below_confidence: number("r_confidence"), disagreement: field("r_disagreement").checked, sample_rate: number("r_sample") || 0 },
        };
        const result = await api("PUT", `/api/v1/projects/${project}/quality`, csrf, JSON.stringify(body));
        const box = document.getElementById("quality-result");
        if (result.status === 200) say(box, "Saved.", true); else say(box, result.body.error.message, false);
      });
    }
    for (const button of document.querySelectorAll("button.standing")) {
      button.addEventListener("click", async () => {
        const { user, action } = button.dataset;
        const body = action === "qualify" ? { action, passed: true, reason: "qualified by a manager" } : { action, reason: "reinstated by a manager" };
        const result = await api("POST", `/api/v1/projects/${project}/raters/${user}/standing`, csrf, JSON.stringify(body));
        if (result.status === 200) { window.location.reload(); return; }
        say(document.getElementById("standing-result"), result.body.error.message, false);
      });
    }
    const member = document.getElementById("member");
    if (member) member.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(member);
      const locales = String(data.get("locales") || "").split(",").map((l) => l.trim()).filter(Boolean);
      const body = JSON.stringify({ user: data.get("user"), role: data.get("role"), locales });
      const result = await api("POST", `/api/v1/projects/${project}/members`, csrf, body);
      const box = document.getElementById("member-result");
      if (result.status === 201) { say(box, `${data.get("user")} is now ${data.get("role")}.`, true); member.reset(); }
      else say(box, result.body.error.message, false);
    });
  }

  const runStandard = document.getElementById("run-standard");
  if (runStandard) {
    const csrf = document.getElementById("standards").dataset.csrf;
    runStandard.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(runStandard);
      const box = document.getElementById("run-result");
      const file = data.get("file");
      say(box, "Running: the models are answering…", true);
      const models = encodeURIComponent(String(data.get("models")));
      const result = await api("POST", `/api/v1/standards?models=${models}`, csrf, await file.text(), "text/plain");
      if (result.status === 201) { window.location.reload(); return; }
      say(box, result.body.error.message, false);
    });
  }

  const create = document.getElementById("new-project");
  if (create) {
    const csrf = create.dataset.csrf;
    const templates = JSON.parse(document.getElementById("templates").textContent);
    const chooser = document.getElementById("template");
    const schema = document.getElementById("schema");
    const fill = () => { if (templates[chooser.value]) schema.value = JSON.stringify(templates[chooser.value], null, 2); };
    chooser.addEventListener("change", fill);
    fill();
    document.getElementById("create").addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(e.target);
      const box = document.getElementById("create-result");
      let parsed;
      try { parsed = JSON.parse(String(data.get("schema"))); } catch (err) { return say(box, `The schema is not JSON: ${err.message}`, false); }
      const body = JSON.stringify({
        name: data.get("name"), instructions: data.get("instructions"),
        overlap: Number(data.get("overlap")), schema: parsed,
      });
      const result = await api("POST", "/api/v1/projects", csrf, body);
      if (result.status === 201) { window.location = `/projects/${result.body.project.id}`; return; }
      say(box, result.body.error.message, false);
    });
  }
})();
