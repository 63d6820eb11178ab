// shoulders studio, second part: training, evaluation, trying images, export, and the page's start.
// Loaded after studio.js, whose helpers ($, api, guarded, onSubmit, ...) and state it uses.
"use strict";

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

onSubmit("train-form", async () => {
  const run = await api("/api/runs", {body: {name: $("train-name").value.trim(), strategy: $("train-strategy").value,
    epochs: $("train-epochs").value, image_size: $("train-size").value, budget: $("train-budget").value}});
  state.run = run.name;
  $("train-name").value = "";
  await refreshRuns();
  renderRun(run);
  pollRun();
});
for (const action of ["cancel", "resume"]) $(`train-${action}`).addEventListener("click", () => guarded(async () => {
  renderRun(await api(`/api/runs/${encodeURIComponent(state.run)}/${action}`, {body: {}})); pollRun(); }));

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

onSubmit("eval-form", () => {
  const name = $("eval-run").value;
  if (!name) throw new Error("no finished run to evaluate: train one first");
  return runTask(() => api(`/api/runs/${encodeURIComponent(name)}/evaluate`, {body: {}}), `/api/tasks/evaluate/${encodeURIComponent(name)}`,
    $("eval-status"), (ev) => renderEvaluation(name, ev));
});

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
onSubmit("export-form", () => {
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
});

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
