// The rater's workspace: renders each item and its questions from the project schema, takes
// answers by keyboard or pointer, and submits through the JSON API. Item content is only ever
// put into the page as text (textContent), never as HTML.
"use strict";
(() => {
  const root = document.getElementById("workspace");
  const project = root.dataset.project;
  const csrf = root.dataset.csrf;
  const schema = JSON.parse(document.getElementById("schema").textContent);
  const itemBox = document.getElementById("item");
  const form = document.getElementById("answers");
  const bar = document.getElementById("bar");
  const status = document.getElementById("status");
  const help = document.getElementById("instructions");
  const PAIRWISE_KEYS = { a: "a", b: "b", t: "tie", x: "both_bad", 1: "a", 2: "b", 3: "tie", 4: "both_bad" };

  let current = null; // {lease, item}
  let answers = {};
  let active = 0;
  let started = 0;
  let busy = false;

  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c) node.append(c);
    return node;
  };

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return { status: 204, body: null };
    const text = await response.text();
    let parsed = null;
    try { parsed = JSON.parse(text); } catch (_) { parsed = { error: { message: text } }; }
    return { status: response.status, body: parsed };
  }

  // ---- safe markdown: headings, emphasis, code, lists, paragraphs; everything else is text.
  function inline(text, parent) {
    const pattern = /(\*\*[^*]+\*\*|`[^`]+`|\*[^*]+\*)/g;
    let last = 0;
    for (const m of text.matchAll(pattern)) {
      parent.append(text.slice(last, m.index));
      const t = m[0];
      if (t.startsWith("**")) parent.append(el("strong", { text: t.slice(2, -2) }));
      else if (t.startsWith("`")) parent.append(el("code", { text: t.slice(1, -1) }));
      else parent.append(el("em", { text: t.slice(1, -1) }));
      last = m.index + t.length;
    }
    parent.append(text.slice(last));
  }
  function markdown(text) {
    const box = el("div", { class: "markdown", dir: "auto" });
    let list = null;
    let code = null;
    for (const line of String(text).split("\n")) {
      if (line.startsWith("```")) {
        if (code) { box.append(code); code = null; } else { code = el("pre", { class: "mono" }); }
        continue;
      }
      if (code) { code.append(line + "\n"); continue; }
      const heading = line.match(/^(#{1,6})\s+(.*)$/);
      const bullet = line.match(/^\s*(?:[-*+]|\d+\.)\s+(.*)$/);
      if (bullet) {
        if (!list) { list = el("ul"); box.append(list); }
        const li = el("li"); inline(bullet[1], li); list.append(li);
        continue;
      }
      list = null;
      if (heading) { const h = el("h" + Math.min(6, heading[1].length + 2)); inline(heading[2], h); box.append(h); }
      else if (line.trim()) { const p = el("p"); inline(line, p); box.append(p); }
    }
    if (code) box.append(code);
    return box;
  }

  function renderField(field, value) {
    const box = el("section", { class: "field card" }, el("h3", { text: field.title || field.name }));
    if (value === undefined || value === null) return null;
    switch (field.kind) {
      case "markdown": box.append(markdown(value)); break;
      case "chat":
        for (const turn of value) {
          box.append(el("div", { class: "turn " + (turn.role || ""), dir: "auto" },
            el("div", { class: "role", text: turn.role || "" }),
            el("div", { class: "prewrap", text: turn.content || "" })));
        }
        break;
      case "image":
        if (/^https?:\/\//.test(value)) box.append(el("img", { src: value, alt: field.name, style: "max-width:100%" }));
        else box.append(el("div", { class: "muted", text: value }));
        break;
      case "responses": {
        const grid = el("div", { class: "responses" });
        for (const r of value) {
          grid.append(el("div", { class: "response", dir: "auto" },
            el("h4", { text: r.name }), markdown(r.content || "")));
        }
        box.append(grid);
        break;
      }
      case "metadata": {
        const meta = el("div", { class: "meta" });
        for (const [k, v] of Object.entries(value)) {
          meta.append(el("span", { class: "muted", text: k }), el("span", { dir: "auto", text: typeof v === "string" ? v : JSON.stringify(v) }));
        }
        box.append(meta);
        break;
      }
      default: box.append(el("div", { class: "prewrap", dir: "auto", text: String(value) }));
    }
    return box;
  }

  // ---- questions
  function choice(q, type, value, label, key, checked, onchange) {
    const input = el("input", { type, name: q.name, value });
    input.checked = checked;
    input.addEventListener("change", onchange);
    return el("label", { class: "choice" + (checked ? " checked" : "") }, input, el("span", { text: label }), key ? el("kbd", { text: key }) : null);
  }

  function responseNames(q) {
    const value = current.item.fields[q.field] || [];
    return value.map((r) => r.name);
  }

  function renderQuestion(q, index) {
    const box = el("section", { class: "question card" + (index === active ? " active" : ""), "data-question": q.name },
      el("h3", { text: q.name + (q.required ? " *" : "") }));
    if (q.instructions) box.append(el("p", { class: "muted prewrap", dir: "auto", text: q.instructions }));
    const value = answers[q.name];
    const set = (v) => { if (v === undefined) delete answers[q.name]; else answers[q.name] = v; draw(); };
    switch (q.kind) {
      case "label": {
        const row = el("div", { class: "choices" });
        q.options.forEach((o, i) => row.append(choice(q, "radio", o, o, i < 9 ? String(i + 1) : "", value === o, () => { set(o); advance(); })));
        box.append(row); break;
      }
      case "multi_label": {
        const row = el("div", { class: "choices" });
        const chosen = new Set(value || []);
        q.options.forEach((o, i) => row.append(choice(q, "checkbox", o, o, i < 9 ? String(i + 1) : "", chosen.has(o), () => toggle(q, o))));
        box.append(row); break;
      }
      case "rating": {
        const row = el("div", { class: "choices" });
        for (let v = q.min; v <= q.max; v++) {
          const key = q.max - q.min < 9 ? String(v - q.min + 1) : "";
          row.append(choice(q, "radio", String(v), String(v), key, value === v, () => { set(v); advance(); }));
        }
        box.append(row); break;
      }
      case "pairwise": {
        const row = el("div", { class: "choices" });
        const options = [["a", "A is better", "a"], ["b", "B is better", "b"], ["tie", "Tie", "t"]];
        if (q.allow_both_bad) options.push(["both_bad", "Both bad", "x"]);
        for (const [v, label, key] of options) row.append(choice(q, "radio", v, label, key, value === v, () => { set(v); advance(); }));
        box.append(row); break;
      }
      case "text": {
        const area = el("textarea", { rows: "5", dir: "auto", name: q.name });
        area.value = value || "";
        area.addEventListener("input", () => { if (area.value) answers[q.name] = area.value; else delete answers[q.name]; });
        box.append(area); break;
      }
      case "ranking": {
        const names = responseNames(q);
        const tiers = value || names.map((n) => [n]);
        if (!value) answers[q.name] = tiers;
        const list = el("ol", { class: "ranking" });
        tiers.forEach((tier, t) => {
          const li = el("li", { draggable: "true", "data-tier": String(t), class: q._picked === t ? "picked" : "" },
            el("span", { text: tier.join(" = ") }),
            el("span", {},
              el("button", { type: "button", text: "↑", onclick: () => moveTier(q, t, -1) }),
              el("button", { type: "button", text: "↓", onclick: () => moveTier(q, t, 1) }),
              t > 0 ? el("button", { type: "button", text: "=", title: "tie with the one above", onclick: () => tieTier(q, t) }) : null));
          li.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", String(t)));
          li.addEventListener("dragover", (e) => e.preventDefault());
          li.addEventListener("drop", (e) => { e.preventDefault(); dropTier(q, Number(e.dataTransfer.getData("text/plain")), t); });
          li.addEventListener("click", () => { q._picked = t; draw(); });
          list.append(li);
        });
        box.append(list, el("p", { class: "muted", text: "Pick with a number key, move with ↑ ↓, = ties with the one above; or drag." }));
        break;
      }
      case "spans": {
        const text = String(current.item.fields[q.field] || "");
        const spans = (value || []).slice().sort((x, y) => x.start - y.start);
        const chars = Array.from(text);
        const area = el("div", { class: "span-text card", dir: "auto", "data-spans": q.name });
        let at = 0;
        for (const s of spans) {
          area.append(chars.slice(at, s.start).join(""));
          const mark = el("mark", { title: "click to remove" }, chars.slice(s.start, s.end).join(""), el("span", { class: "tag", text: s.label }));
          mark.addEventListener("click", () => set(spans.filter((x) => x !== s).length ? spans.filter((x) => x !== s) : undefined));
          area.append(mark);
          at = s.end;
        }
        area.append(chars.slice(at).join(""));
        const row = el("div", { class: "choices" });
        q.labels.forEach((l, i) => row.append(el("button", { type: "button", class: "choice", text: `${l} ${i < 9 ? i + 1 : ""}`, onclick: () => addSpan(q, l) })));
        box.append(el("p", { class: "muted", text: "Select text, then press a label's number." }), area, row);
        break;
      }
    }
    box.addEventListener("click", () => { if (active !== index) { active = index; draw(); } });
    return box;
  }

  function toggle(q, option) {
    const chosen = new Set(answers[q.name] || []);
    if (chosen.has(option)) chosen.delete(option); else chosen.add(option);
    if (chosen.size) answers[q.name] = q.options.filter((o) => chosen.has(o)); else delete answers[q.name];
    draw();
  }
  function moveTier(q, t, by) {
    const tiers = answers[q.name];
    const to = t + by;
    if (to < 0 || to >= tiers.length) return;
    [tiers[t], tiers[to]] = [tiers[to], tiers[t]];
    q._picked = to;
    draw();
  }
  function dropTier(q, from, to) {
    const tiers = answers[q.name];
    const [moved] = tiers.splice(from, 1);
    tiers.splice(to, 0, moved);
    draw();
  }
  function tieTier(q, t) {
    const tiers = answers[q.name];
    if (t < 1) return;
    tiers[t - 1] = tiers[t - 1].concat(tiers[t]);
    tiers.splice(t, 1);
    q._picked = t - 1;
    draw();
  }
  // A position in the span area as a character (code point) offset into the item's text:
  // the label tags inside marks are not part of the text.
  function offsetIn(area, node, offset) {
    let count = 0;
    const walker = document.createTreeWalker(area, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      if (t.parentElement.closest(".tag")) continue;
      if (t === node) return count + Array.from(t.data.slice(0, offset)).length;
      count += Array.from(t.data).length;
    }
    return count;
  }
  function addSpan(q, label) {
    const selection = window.getSelection();
    const area = form.querySelector(`[data-spans="${CSS.escape(q.name)}"]`);
    if (!selection || selection.isCollapsed || !area || !area.contains(selection.anchorNode)) return;
    const range = selection.getRangeAt(0);
    const start = offsetIn(area, range.startContainer, range.startOffset);
    const end = offsetIn(area, range.endContainer, range.endOffset);
    if (end <= start) return;
    answers[q.name] = (answers[q.name] || []).concat([{ start, end, label }]);
    selection.removeAllRanges();
    draw();
  }

  function advance() {
    if (active < schema.questions.length - 1) { active += 1; draw(); }
  }

  function draw() {
    form.replaceChildren(...schema.questions.map(renderQuestion));
    const q = schema.questions[active];
    if (q && q.kind === "text") {
      const area = form.querySelector(`[data-question="${CSS.escape(q.name)}"] textarea`);
      if (area && document.activeElement !== area) area.focus();
    }
  }

  function show(assignment) {
    current = assignment;
    busy = false;
    if (!assignment) {
      itemBox.replaceChildren(el("section", { class: "card" }, el("h2", { text: "All done" }), el("p", { class: "muted", text: "There is nothing more for you in this project right now." })));
      form.hidden = true; bar.hidden = true;
      status.textContent = "";
      return;
    }
    answers = JSON.parse(JSON.stringify(assignment.item.suggestions || {}));
    active = 0;
    for (const q of schema.questions) delete q._picked;
    itemBox.replaceChildren(...schema.fields.map((f) => renderField(f, assignment.item.fields[f.name])).filter(Boolean));
    if (assignment.item.metadata && Object.keys(assignment.item.metadata).length) {
      itemBox.append(renderField({ name: "metadata", kind: "metadata" }, assignment.item.metadata));
    }
    form.hidden = false; bar.hidden = false;
    status.textContent = assignment.item.suggestions ? "Suggested answers are filled in: accept or change them." : "";
    draw();
    started = performance.now();
    window.scrollTo(0, 0);
  }

  // The project holds the rater back (paused, or not qualified): say why, offer nothing.
  function refused(message) {
    current = null;
    busy = false;
    itemBox.replaceChildren(el("section", { class: "card", id: "refused" }, el("h2", { text: "No more items for you here" }), el("p", { text: message })));
    form.hidden = true; bar.hidden = true;
  }

  async function next() {
    const result = await api("POST", `/api/v1/projects/${project}/next`);
    if (result.status === 204) return show(null);
    if (result.status === 403) return refused(result.body.error.message);
    if (result.status !== 200) { status.textContent = result.body.error.message; return; }
    show(result.body);
  }

  async function submit() {
    if (!current || busy) return;
    busy = true;
    const body = { answers, time_spent_ms: Math.round(performance.now() - started) };
    const result = await api("POST", `/api/v1/leases/${current.lease.id}/response?next=true`, body);
    const gone = result.status === 404 || (result.body && result.body.error && result.body.error.code === "lease_expired");
    if (gone) {
      // The item is no longer held for this rater (the lease expired, or was lost when the
      // database failed over): say so and go on with the next one.
      busy = false;
      await next();
      status.textContent = "That item was no longer held for you, so your answer was not stored; here is the next one.";
      status.className = "error";
      return;
    }
    if (result.status >= 300) {
      busy = false;
      const details = result.body.error.details || {};
      status.textContent = result.body.error.message;
      status.className = "error";
      const index = schema.questions.findIndex((q) => q.name === details.question);
      if (index >= 0) { active = index; draw(); }
      return;
    }
    status.className = "muted";
    const feedback = result.body.feedback;
    const told = feedback ? (feedback.correct ? "Right. " : "Not quite. ") + "The expected answer was " + Object.entries(feedback.expected).map(([q, a]) => `${q}: ${JSON.stringify(a)}`).join(", ") + "." : "";
    if (result.body.next_refused) return refused(result.body.next_refused);
    if (result.body.next === undefined) await next(); else show(result.body.next);
    if (told) status.textContent = told;
  }

  async function skip() {
    if (!current || busy) return;
    busy = true;
    await api("POST", `/api/v1/leases/${current.lease.id}/skip`);
    next();
  }

  document.getElementById("submit").addEventListener("click", submit);
  document.getElementById("skip").addEventListener("click", skip);
  const qHelp = document.getElementById("question-instructions");
  for (const q of schema.questions) if (q.instructions) qHelp.append(el("p", { dir: "auto" }, el("strong", { text: q.name + ": " }), q.instructions));

  document.addEventListener("keydown", (e) => {
    const typing = e.target.matches("textarea, input[type=text], input:not([type])");
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); return; }
    if (typing) { if (e.key === "Escape") e.target.blur(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") { help.hidden = !help.hidden; e.preventDefault(); return; }
    if (!current) return;
    if (e.key === "Enter") { e.preventDefault(); submit(); return; }
    if (e.key === "s") { e.preventDefault(); skip(); return; }
    if (e.key === "n" || e.key === "Tab" && !e.shiftKey && schema.questions.length > 1) {
      e.preventDefault(); active = (active + 1) % schema.questions.length; draw(); return;
    }
    if (e.key === "p" || e.key === "Tab" && e.shiftKey && schema.questions.length > 1) {
      e.preventDefault(); active = (active + schema.questions.length - 1) % schema.questions.length; draw(); return;
    }
    const q = schema.questions[active];
    if (!q) return;
    const digit = /^[1-9]$/.test(e.key) ? Number(e.key) - 1 : -1;
    switch (q.kind) {
      case "label": if (digit >= 0 && digit < q.options.length) { answers[q.name] = q.options[digit]; advance(); draw(); } break;
      case "multi_label": if (digit >= 0 && digit < q.options.length) toggle(q, q.options[digit]); break;
      case "rating": if (digit >= 0 && q.min + digit <= q.max) { answers[q.name] = q.min + digit; advance(); draw(); } break;
      case "pairwise": {
        const v = PAIRWISE_KEYS[e.key.toLowerCase()];
        if (v && (v !== "both_bad" || q.allow_both_bad)) { answers[q.name] = v; advance(); draw(); }
        break;
      }
      case "ranking": {
        const tiers = answers[q.name] || [];
        if (digit >= 0 && digit < tiers.length) { q._picked = digit; draw(); }
        else if (q._picked !== undefined && e.key === "ArrowUp") { e.preventDefault(); moveTier(q, q._picked, -1); }
        else if (q._picked !== undefined && e.key === "ArrowDown") { e.preventDefault(); moveTier(q, q._picked, 1); }
        else if (q._picked !== undefined && e.key === "=") tieTier(q, q._picked);
        break;
      }
      case "spans": if (digit >= 0 && digit < q.labels.length) addSpan(q, q.labels[digit]); break;
      case "text": if (e.key.length === 1) { /* focus the box and let the key through */ draw(); } break;
    }
  });

  next();
})();
