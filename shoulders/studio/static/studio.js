// shoulders studio: plain JavaScript, no libraries, nothing loaded from the network.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (x, d = 3) => (typeof x === "number" && isFinite(x) ? x.toFixed(d) : "–");
const pct = (x) => (typeof x === "number" && isFinite(x) ? (100 * x).toFixed(1) + " %" : "–");
const state = {session: null, run: null, runs: [], poll: null};

// -- talking to the server -----------------------------------------------------------------------------------
async function api(path, options = {}) {
  // the header marks requests from this page (the server refuses changes without it)
  const init = {method: options.method || (options.body !== undefined ? "POST" : "GET"), headers: {"X-Shoulders-Studio": "1"}};
  if (options.body instanceof FormData) init.body = options.body;
  else if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try { response = await fetch(path, init); } catch (e) { throw new Error("the studio server does not answer: is `shoulders studio` still running?"); }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = {error: text}; }
  if (!response.ok) {
    const detail = data && (data.error || data.detail);
    throw new Error(typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : response.statusText);
  }
  return data;
}

function say(text, kind = "error") {
  const box = $("message");
  box.hidden = !text;
  box.className = "msg " + kind;
  box.textContent = text || "";
}

async function guarded(fn) {
  try { say(""); await fn(); } catch (e) { say(e.message); }
}
// a form's submit runs fn (guarded) instead of reloading the page
const onSubmit = (id, fn) => $(id).addEventListener("submit", (e) => { e.preventDefault(); guarded(fn); });

// a background task: start it, then poll until done; onDone gets the result
async function runTask(start, pollPath, statusEl, onDone) {
  statusEl.textContent = "working…";
  let task = await start();
  while (task.status === "running") {
    statusEl.textContent = `working… ${task.seconds.toFixed(0)} s`;
    await new Promise((r) => setTimeout(r, 700));
    task = await api(pollPath);
  }
  if (task.status === "failed") { statusEl.textContent = "failed"; throw new Error(task.error); }
  statusEl.textContent = `done in ${task.seconds.toFixed(1)} s`;
  onDone(task.result);
}

// -- tabs --------------------------------------------------------------------------------------------------------
function showTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => s.classList.toggle("active", s.id === "tab-" + name));
  if (["train", "evaluate", "try", "export"].includes(name)) refreshRuns();
}
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// -- data ----------------------------------------------------------------------------------------------------------
function renderSummary(s) {
  const box = $("data-summary");
  box.hidden = !s;
  if (!s) return;
  const editable = s.layout === "pool";
  const max = Math.max(1, ...s.classes.map((c) => c.count));
  const splitCols = s.splits.length > 1 ? s.splits : [];
  const rows = s.classes.map((c) => `<tr data-class="${esc(c.name)}"><td>${esc(c.name)}</td>
      ${splitCols.map((sp) => `<td class="num">${c.splits[sp] ?? 0}</td>`).join("")}
      <td class="num">${c.count}</td><td class="barcell"><div class="bar" style="width:${(100 * c.count / max).toFixed(1)}%"></div></td>
      <td class="num">${c.bad ? `<span class="warn">${c.bad}</span>` : ""}</td>
      ${editable ? `<td><label class="dropzone small" data-class="${esc(c.name)}"><input type="file" accept="image/*" multiple>
        <span>drop images or click</span></label></td>` : ""}</tr>`).join("");
  const sizes = s.sizes && s.sizes.min ? `<p>native sizes (width×height): min ${s.sizes.min.join("×")}, median
      ${s.sizes.median.join("×")}, max ${s.sizes.max.join("×")}; ${s.sizes.distinct} distinct — most common:
      ${s.sizes.common.map((c) => `${esc(c.size)} (${c.count})`).join(", ")}</p>` : "";
  const bad = s.bad_images.length ? `<h3>Unreadable images (${s.bad_images.length}) — training skips them</h3><ul class="files">
      ${s.bad_images.slice(0, 20).map((b) => `<li><code>${esc(b.path)}</code>: ${esc(b.reason)}</li>`).join("")}</ul>` : "";
  const d = s.duplicates, split = (m) => (s.splits.length > 1 ? `${esc(m.split)}: ` : "");
  const dups = d && (d.exact.length || d.near.length) ? `<h3>Duplicates</h3><p>${esc(d.summary)}</p><ul class="files">
      ${d.exact.slice(0, 20).map((g) => `<li>${g.map((m) => `${split(m)}<code>${esc(m.image)}</code>`).join(" = ")}</li>`).join("")}
      ${d.near.slice(0, 20).map((p) => `<li>${split(p.a)}<code>${esc(p.a.image)}</code> ≈ ${split(p.b)}<code>${esc(p.b.image)}</code> (${p.distance} bits apart)</li>`).join("")}</ul>`
    : d ? `<p class="muted small">No duplicate images${d.near_checked ? " (exact or near)" : " (exact copies; near copies need <code>pip install \"shoulders[dedup]\"</code>)"}.</p>` : "";
  const ready = s.problem ? `<p class="msg warning">Not ready to train: ${esc(s.problem)}</p>`
      : `<p class="msg ok">Ready: ${s.total} images in ${s.classes.length} classes. Next: <a href="#" data-go="advise">advise</a>.</p>`;
  const layout = {pool: "one folder per class, not split (training holds out a stratified 20 % for validation)",
    folders: `split into ${s.splits.map((x) => x + "/").join(", ")} folders`, csv: "a CSV of path,label"}[s.layout];
  box.innerHTML = `<h2>${esc(s.source)}</h2><p class="muted">${s.total} images, ${s.classes.length} classes;
      ${esc(layout)}</p>${ready}
      <table><tr><th>class</th>${splitCols.map((sp) => `<th>${esc(sp)}</th>`).join("")}<th>images</th><th></th><th>bad</th>${editable ? "<th>add</th>" : ""}</tr>${rows}</table>
      ${sizes}${bad}${dups}<div id="upload-report"></div>`;
  box.querySelectorAll(".dropzone").forEach((zone) => wireDrop(zone, (files) => uploadImages(zone.dataset.class, files), true));
  box.querySelectorAll("[data-go]").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); showTab(a.dataset.go); }));
  $("class-form").hidden = !editable;
}

function wireDrop(zone, onFiles) {
  const input = zone.querySelector("input[type=file]");
  input.addEventListener("change", () => { if (input.files.length) onFiles([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
}

// files in requests the server's limits allow (as many files and bytes as one request may carry)
function batches(files) {
  const out = [];
  const room = 0.9 * state.session.max_request_bytes;
  for (const f of files) {
    const last = out[out.length - 1];
    if (last && last.length < state.session.max_files && last.reduce((n, x) => n + x.size, 0) + f.size <= room) last.push(f);
    else out.push([f]);
  }
  return out;
}

async function uploadImages(className, files) {
  await guarded(async () => {
    let saved = 0, summary = null;
    const rejected = [];
    for (const batch of batches(files)) {
      const form = new FormData();
      batch.forEach((f) => form.append("images", f, f.name));
      try {
        const r = await api(`/api/data/classes/${encodeURIComponent(className)}/images`, {body: form});
        saved += r.saved.length;
        rejected.push(...r.rejected.map((x) => x.error));
        summary = r.summary;
      } catch (e) { rejected.push(e.message); }
    }
    if (summary) renderSummary(summary);
    const list = rejected.map((x) => `<li>${esc(x)}</li>`).join("");
    $("upload-report").innerHTML = `<p class="msg ${rejected.length ? "warning" : "ok"}">${esc(className)}: ${saved} image(s) added` +
      (rejected.length ? `, ${rejected.length} refused:</p><ul class="files">${list}</ul>` : ".</p>");
  });
}

onSubmit("open-form", async () => {
  const box = $("data-summary");
  box.hidden = false;
  box.innerHTML = '<p class="muted">reading every image of the folder (sizes, bad files, duplicates)…</p>';
  try { renderSummary((await api("/api/data/open", {body: {path: $("data-path").value.trim()}})).summary); }
  catch (err) { renderSummary((await api("/api/data")).summary); throw err; }
  await loadSession();
});
onSubmit("new-form", async () => {
  renderSummary((await api("/api/data/new", {body: {name: $("new-name").value.trim()}})).summary);
  await loadSession();
});
onSubmit("class-form", async () => {
  renderSummary((await api("/api/data/classes", {body: {name: $("class-name").value.trim()}})).summary);
  $("class-name").value = "";
});

// -- advise --------------------------------------------------------------------------------------------------------
function table(header, rows) {
  return `<table><tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${rows.map((r) =>
    `<tr>${r.map((c) => (typeof c === "number" ? `<td class="num">${fmt(c, 4)}</td>` : `<td>${esc(c)}</td>`)).join("")}</tr>`).join("")}</table>`;
}

function renderAdvice(result) {
  const a = result.advice, p = a.plan, s = a.size;
  $("advise-result").hidden = false;
  $("advise-matrix").src = result.matrix;
  const depth = p.strategy === "partial" ? `, top ${p.trainable_blocks} blocks` : "";
  $("advise-plan").innerHTML = `<h2>Plan: ${esc(p.strategy)}${esc(depth)} <span class="badge">Q${a.quadrant}</span></h2>
    <p>${s.total} images, ${s.classes} classes (median ${s.median_per_class} per class, min ${s.min_per_class}, max ${s.max_per_class});
      similarity ${fmt(a.similarity)} against threshold ${fmt(a.similarity_threshold, 2)}.</p>
    <p>augment <b>${esc(p.augment)}</b>, head lr <b>${p.lr}</b>${p.strategy !== "frozen" ? `, backbone ×${p.backbone_lr_mult}` : ""},
      <b>${p.epochs}</b> epochs${p.head_epochs ? ` (${p.head_epochs} head-only first)` : ""} —
      measured on ${a.sample_size} images at ${a.image_size} px in ${fmt(a.seconds, 1)} s.</p>
    <h3>Why</h3><ul>${a.reasons.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>
    <p class="muted small">${esc(a.similarity_method)}. Advice for <code>${esc(result.data)}</code>.</p>`;
  $("advise-measurements").innerHTML = "<h3>Every measurement</h3>" + table(["name", "value", "threshold", "meaning"],
    Object.values(a.measurements).map((m) => [m.name, m.value ?? "–", m.threshold ?? "", m.meaning]));
  $("advise-blocks").innerHTML = a.depth_probe.length ? "<h3>Per block (bottom to top)</h3>" + table(["block", "probe accuracy", "similarity"],
    a.depth_probe.map((r) => [r.block, r.probe_accuracy ?? "–", r.similarity ?? "–"])) : "";
  $("train-note").textContent = `The advisor's plan: ${p.strategy}${depth}, ${p.epochs} epochs. With strategy auto, training plans again (this machine's speed included) and prints its prediction in the log.`;
}

function renderBudgetTable(rows) {
  const use = state.session.train_budget;
  $("budget-body").innerHTML = `<table><tr><th>budget</th><th>planned recipe</th><th>predicted time</th><th>expected accuracy</th>${use ? "<th></th>" : ""}</tr>` +
    rows.map((r) => `<tr><td>${esc(r.budget)}</td><td>${esc(r.recipe)}</td><td class="num">${esc(r.predicted)}</td><td class="num">${pct(r.expected_accuracy)}</td>` +
      (use ? `<td><button class="secondary use-budget" data-budget="${esc(r.budget)}">train with this budget</button></td>` : "") + "</tr>").join("") + "</table>" +
    `<p class="muted small">From the throughput measured on this machine and the planner's calibrated curves (benchmarks/).` +
    (use ? "" : " This version's <code>shoulders train</code> takes no budget yet: set the epochs and image size of a row on the train tab.") + "</p>";
  document.querySelectorAll(".use-budget").forEach((b) => b.addEventListener("click", () => {
    $("train-budget").value = b.dataset.budget.replace(/\s+/g, "").replace(/min/g, "m");  // "1 h 00 min" → "1h00m"
    showTab("train");
  }));
}

async function adviseThenBudget() {
  await runTask(() => api("/api/advise", {body: {image_size: $("advise-size").value ? Number($("advise-size").value) : null}}),
    "/api/advise", $("advise-status"), renderAdvice);
  if (state.session.budget_table) {
    $("budget-body").innerHTML = '<p class="muted">measuring this machine\'s throughput for the planner… <span id="budget-status"></span></p>';
    await runTask(() => api("/api/advise/budget", {body: {}}), "/api/tasks/budget/table", $("budget-status"), renderBudgetTable);
  }
}

onSubmit("advise-form", adviseThenBudget);
