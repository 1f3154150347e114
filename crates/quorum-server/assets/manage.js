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
