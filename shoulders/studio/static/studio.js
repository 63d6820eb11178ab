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

$("open-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(async () => {
  const box = $("data-summary");
  box.hidden = false;
  box.innerHTML = '<p class="muted">reading every image of the folder (sizes, bad files, duplicates)…</p>';
  try { renderSummary((await api("/api/data/open", {body: {path: $("data-path").value.trim()}})).summary); }
  catch (err) { renderSummary((await api("/api/data")).summary); throw err; }
  await loadSession();
}); });
$("new-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(async () => {
  renderSummary((await api("/api/data/new", {body: {name: $("new-name").value.trim()}})).summary);
  await loadSession();
}); });
$("class-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(async () => {
  renderSummary((await api("/api/data/classes", {body: {name: $("class-name").value.trim()}})).summary);
  $("class-name").value = "";
}); });

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

$("advise-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(adviseThenBudget); });

// -- train ---------------------------------------------------------------------------------------------------------
// the smallest 4 × (1, 2, 2.5 or 5 × 10^k) above the data, so that the grid lines fall on round numbers
function niceTop(max) {
  const mag = 10 ** Math.floor(Math.log10(max / 4));
  return 4 * mag * [1, 2, 2.5, 5, 10].find((m) => 4 * m * mag >= max * 1.02);
}

function chart(svg, title, series, yMax, xLabel = "epoch") {
  const W = 420, H = 230, L = 44, R = 10, T = 22, B = 30;
  const pts = series.flatMap((s) => s.points).filter((p) => isFinite(p[1]));
  const xMax = Math.max(1, ...pts.map((p) => p[0]));
  const top = yMax ?? niceTop(Math.max(1e-6, ...pts.map((p) => p[1])));
  const x = (v) => L + (W - L - R) * (xMax === 1 ? 0.5 : (v - 1) / (xMax - 1));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  let out = `<text x="${L}" y="14" class="title">${esc(title)}</text>`;
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    out += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${L - 4}" y="${y(v) + 4}" class="tick" text-anchor="end">${v.toFixed(top < 2 ? 2 : 1)}</text>`;
  }
  for (let e = 1; e <= xMax; e += Math.max(1, Math.ceil(xMax / 10))) out += `<text x="${x(e)}" y="${H - 12}" class="tick" text-anchor="middle">${e}</text>`;
  out += `<text x="${(L + W) / 2}" y="${H - 1}" class="tick" text-anchor="middle">${esc(xLabel)}</text>`;
  series.forEach((s, i) => {
    const good = s.points.filter((p) => isFinite(p[1]));
    if (good.length) {
      out += `<polyline class="line" stroke="${s.color}" points="${good.map((p) => `${x(p[0])},${y(p[1])}`).join(" ")}"/>`;
      out += good.map((p) => `<circle cx="${x(p[0])}" cy="${y(p[1])}" r="2.5" fill="${s.color}"/>`).join("");
    }
    out += `<rect x="${W - R - 150 + i * 75}" y="6" width="10" height="10" fill="${s.color}"/><text x="${W - R - 136 + i * 75}" y="15" class="tick">${esc(s.name)}</text>`;
  });
  svg.innerHTML = out;
}

function renderRun(run) {
  state.run = run.name;
  const h = run.history;
  const series = (key) => h.map((r) => [r.epoch, typeof r[key] === "number" ? r[key] : NaN]);
  // the frozen strategy's L-BFGS head: one row per regularisation strength tried, not epochs
  const search = h.length > 0 && typeof h[0].C === "number";
  const x = search ? "head fit: regularisation step (C)" : "epoch";
  chart($("chart-loss"), "loss", [{name: "train", color: "#3a6ea5", points: series("train_loss")}, {name: "val", color: "#d2691e", points: series("val_loss")}], undefined, x);
  chart($("chart-acc"), "accuracy", [{name: "train", color: "#3a6ea5", points: series("train_accuracy")}, {name: "val", color: "#d2691e", points: series("val_accuracy")}], 1, x);
  const badge = $("run-status");
  badge.textContent = run.status;
  badge.className = "badge " + run.status;
  $("train-cancel").hidden = run.status !== "running";
  $("train-resume").hidden = !run.resumable;
  const last = h[h.length - 1];
  const m = run.metrics;
  const plan = run.log.filter((line) => line.startsWith("plan:")).pop();  // the planner's prediction, when it ran
  $("run-summary").innerHTML = (plan ? `<b>${esc(plan)}</b><br>` : "") + (last ? `${search ? "step" : "epoch"} ${last.epoch}: train loss ${fmt(last.train_loss)}, val accuracy ${pct(last.val_accuracy)}. ` : "No epoch finished yet. ") +
    (m ? `<b>Best val accuracy ${pct(m.val_accuracy)}</b>${m.test_accuracy !== undefined ? `, test ${pct(m.test_accuracy)}` : ""}. ` : "") +
    `<span class="muted">Run folder: <code>${esc(run.path)}</code></span>` +
    (run.finished ? ` — next: <a href="#" data-go="try">try it</a> or <a href="#" data-go="evaluate">evaluate it</a>.` : "");
  $("run-summary").querySelectorAll("[data-go]").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); showTab(a.dataset.go); }));
  $("run-log").textContent = run.log.join("\n");
}

async function pollRun() {
  clearTimeout(state.poll);
  if (!state.run) return;
  try {
    const run = await api(`/api/runs/${encodeURIComponent(state.run)}`);
    renderRun(run);
    if (run.status === "running" || run.status === "cancelling") state.poll = setTimeout(pollRun, 1000);
    else refreshRuns();
  } catch (e) { say(e.message); }
}

async function refreshRuns() {
  try { state.runs = (await api("/api/runs")).runs; } catch (e) { say(e.message); return; }
  document.querySelectorAll(".run-select").forEach((sel) => {
    const onlyFinished = sel.id !== "train-run";
    const runs = state.runs.filter((r) => !onlyFinished || r.finished);
    const keep = state.run && runs.some((r) => r.name === state.run) ? state.run : runs[0]?.name;
    sel.innerHTML = runs.length ? runs.map((r) => `<option value="${esc(r.name)}">${esc(r.name)} — ${esc(r.status)}${r.metrics ? ", val " + pct(r.metrics.val_accuracy) : ""}</option>`).join("")
      : `<option value="">${onlyFinished ? "no finished run yet" : "no run yet"}</option>`;
    if (keep) sel.value = keep;
  });
  if (!state.run && state.runs.length) { state.run = state.runs[0].name; pollRun(); }
}

document.querySelectorAll(".run-select").forEach((sel) => sel.addEventListener("change", () => {
  if (sel.value) { state.run = sel.value; document.querySelectorAll(".run-select").forEach((o) => { if ([...o.options].some((x) => x.value === sel.value)) o.value = sel.value; }); pollRun(); }
}));

$("train-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(async () => {
  const run = await api("/api/runs", {body: {name: $("train-name").value.trim(), strategy: $("train-strategy").value,
    epochs: $("train-epochs").value, image_size: $("train-size").value, budget: $("train-budget").value}});
  state.run = run.name;
  $("train-name").value = "";
  await refreshRuns();
  renderRun(run);
  pollRun();
}); });
$("train-cancel").addEventListener("click", () => guarded(async () => { renderRun(await api(`/api/runs/${encodeURIComponent(state.run)}/cancel`, {body: {}})); pollRun(); }));
$("train-resume").addEventListener("click", () => guarded(async () => { renderRun(await api(`/api/runs/${encodeURIComponent(state.run)}/resume`, {body: {}})); pollRun(); }));

// -- evaluate --------------------------------------------------------------------------------------------------------
function renderEvaluation(name, ev) {
  const m = ev.metrics, classes = ev.classes;
  $("eval-result").hidden = false;
  const rows = Object.entries(m.per_class).map(([c, v]) => [c, v.precision, v.recall, v.f1, String(v.support)]);
  $("eval-classes").innerHTML = `<h2>${esc(name)}: accuracy ${pct(m.accuracy)}</h2><p>${ev.images} images (${esc(ev.split)} split);
    balanced accuracy ${pct(m.balanced_accuracy)}, log loss ${fmt(m.log_loss)}, ECE ${fmt(m.ece)}.
    <a href="/api/runs/${encodeURIComponent(name)}/files/report.html" target="_blank">report.html</a></p>` + table(["class", "precision", "recall", "f1", "support"], rows);
  const cm = m.confusion_matrix, norm = m.confusion_matrix_normalized;
  $("eval-confusion").innerHTML = `<h3>Confusion matrix (rows: true, columns: predicted)</h3><table class="confusion"><tr><th></th>${classes.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>` +
    cm.map((row, i) => `<tr><th>${esc(classes[i])}</th>${row.map((n, j) => `<td class="num" style="background:rgba(58,110,165,${(0.85 * norm[i][j]).toFixed(2)});color:${norm[i][j] > 0.55 ? "#fff" : "inherit"}">${n}</td>`).join("")}</tr>`).join("") + "</table>";
  $("eval-losses").innerHTML = `<h3>Top losses: the wrong answers the model was surest of</h3>` + (ev.top_losses.length
    ? `<img src="/api/runs/${encodeURIComponent(name)}/files/${esc(ev.files.top_losses)}?t=${Date.now()}" alt="top losses">` +
      table(["image", "true", "predicted", "p(predicted)", "loss"], ev.top_losses.map((t) => [t.description, classes[t.true], classes[t.predicted], t.p_pred, t.loss]))
    : "<p>Every image was classified correctly.</p>");
}

$("eval-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(() => {
  const name = $("eval-run").value;
  if (!name) throw new Error("no finished run to evaluate: train one first");
  return runTask(() => api(`/api/runs/${encodeURIComponent(name)}/evaluate`, {body: {}}), `/api/tasks/evaluate/${encodeURIComponent(name)}`,
    $("eval-status"), (ev) => renderEvaluation(name, ev));
}); });

// -- try -------------------------------------------------------------------------------------------------------------
async function classify(file) {
  await guarded(async () => {
    const name = $("try-run").value;
    if (!name) throw new Error("no finished run to try: train one first");
    const preview = $("try-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("try-result").innerHTML = '<p class="muted">classifying…</p>';
    const form = new FormData();
    form.append("image", file, file.name || "image.png");
    let r;
    try { r = await api(`/api/runs/${encodeURIComponent(name)}/predict`, {body: form}); } catch (e) {
      preview.hidden = true;
      $("try-result").innerHTML = `<p class="muted">No prediction: ${esc(e.message)}</p>`;
      throw e;
    }
    $("try-result").innerHTML = `<h2 class="prediction">${esc(r.label)}</h2><p class="muted">${esc(r.file)} (${r.size.join("×")}) — run ${esc(r.run)}</p>` +
      r.top_k.map((t) => `<div class="topk"><span class="label">${esc(t.label)}</span><span class="track"><span class="fill" style="width:${(100 * t.probability).toFixed(1)}%"></span></span><span class="num">${(100 * t.probability).toFixed(1)} %</span></div>`).join("");
  });
}
wireDrop($("try-drop"), (files) => classify(files[0]));

$("webcam-start").addEventListener("click", () => guarded(async () => {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("this browser does not allow the webcam here (it needs http://127.0.0.1 or https)");
  const video = $("webcam");
  try { video.srcObject = await navigator.mediaDevices.getUserMedia({video: true}); } catch (e) { throw new Error(`no webcam: ${e.message}`); }
  video.hidden = false;
  $("webcam-snap").hidden = false;
}));
$("webcam-snap").addEventListener("click", () => {
  const video = $("webcam"), canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => classify(new File([blob], "webcam.png", {type: "image/png"})), "image/png");
});

// -- export ------------------------------------------------------------------------------------------------------------
$("export-form").addEventListener("submit", (e) => { e.preventDefault(); guarded(() => {
  const name = $("export-run").value, format = $("export-format").value;
  if (!name) throw new Error("no finished run to export: train one first");
  return runTask(() => api(`/api/runs/${encodeURIComponent(name)}/export`, {body: {format}}), `/api/tasks/export/${encodeURIComponent(name)}`,
    $("export-status"), (r) => {
      const base = `/api/runs/${encodeURIComponent(name)}/files/`;
      $("export-result").innerHTML = `<p class="msg ${r.passed ? "ok" : "warning"}">Parity with PyTorch: max |Δ probability| = ${r.max_abs_diff.toExponential(2)}
        ${r.passed ? "≤" : ">"} tolerance ${r.tolerance.toExponential(0)} — ${r.passed ? "passed" : "FAILED"}</p>
        <p><a class="button" href="${base}${encodeURIComponent(r.file)}" download>Download ${esc(r.file)}</a>
        <a class="button secondary" href="${base}${encodeURIComponent(r.spec)}" download>${esc(r.spec)}</a></p>`;
    });
}); });

// -- start -------------------------------------------------------------------------------------------------------------
async function loadSession() {
  const s = state.session = await api("/api/session");
  $("session").textContent = `backbone ${s.backbone}${s.data ? " · data " + s.data : ""} · runs in ${s.runs_dir}`;
  if (s.data) $("data-path").value = s.data;
  const budget = $("train-budget");
  budget.disabled = !s.train_budget;
  budget.title = s.train_budget ? "a time budget such as 90s, 10m, 2h" : "this version of `shoulders train` takes no --budget";
  if (!$("budget-body").innerHTML) {
    $("budget-body").textContent = s.budget_table ? "The table appears after the advice: the planner starts from its measurements."
      : "This version of shoulders has no budget planner: the plan above is the advisor's, and its epochs are what training runs unless you set them on the train tab.";
  }
}

guarded(async () => {
  await loadSession();
  renderSummary((await api("/api/data")).summary);
  const advice = await api("/api/advise");
  if (advice.status === "done") renderAdvice(advice.result);
  await refreshRuns();
});
