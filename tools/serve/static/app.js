// mnistkit serve: the page's logic. No framework, no network access beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad"), ctx = pad.getContext("2d");
let maxUpload = 10 * 1024 * 1024;
let hasInk = false, drawing = false, last = null, timer = null, seq = 0, shownSeq = 0;

// ----- model description -----
fetch("/api/model").then((r) => r.json()).then((m) => {
  const acc = typeof m.test_accuracy === "number" ? `, ${(100 * m.test_accuracy).toFixed(2)}% on MNIST test` : "";
  $("model").textContent = `${m.model || m.file}: ${m.format} ${m.mode || ""} on ${m.backend}${acc}`;
  if (m.limits) maxUpload = m.limits.max_upload_bytes;
}).catch(() => { $("model").textContent = "cannot reach the server"; });

// ----- bars -----
const bars = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="p">0.0%</span>`;
  $("bars").appendChild(li);
  bars.push(li);
}

function showResult(rec, source, roundTripMs) {
  hideMessage();
  $("digit").textContent = String(rec.label);
  $("digit").dataset.source = source;
  $("confidence").textContent = `${(100 * rec.confidence).toFixed(1)}% sure`;
  rec.probabilities.forEach((p, d) => {
    bars[d].querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    bars[d].querySelector(".p").textContent = `${(100 * p).toFixed(1)}%`;
    bars[d].classList.toggle("top", d === rec.label);
  });
  if (rec.input_png) { $("seen").src = rec.input_png; $("seen").hidden = false; }
  $("timing").textContent = `${rec.time_ms.toFixed(1)} ms on the server, ${roundTripMs.toFixed(0)} ms round trip`;
}

function resetResult() {
  $("digit").textContent = "–";
  $("digit").dataset.source = "";
  $("confidence").textContent = "";
  $("timing").textContent = "";
  $("seen").hidden = true;
  bars.forEach((li) => { li.querySelector(".fill").style.width = "0"; li.querySelector(".p").textContent = "0.0%"; li.classList.remove("top"); });
}

function showMessage(text) {
  resetResult();
  $("message").textContent = text;
  $("message").hidden = false;
  $("digit").textContent = "?";
  $("digit").dataset.source = "error";
}
function hideMessage() { $("message").hidden = true; }

// ----- the API call shared by the canvas and the photo -----
async function classify(body, source, headers = {}) {
  const mine = ++seq;
  const t0 = performance.now();
  let res, doc;
  try {
    res = await fetch("/api/classify?debug=1&top_k=10", { method: "POST", body, headers });
    doc = await res.json();
  } catch (err) {
    if (mine >= shownSeq) showMessage("cannot reach the server; is `mnistkit serve` still running?");
    return;
  }
  if (mine < shownSeq) return; // a newer answer is already shown
  shownSeq = mine;
  if (!res.ok) { showMessage(doc.error || `the server refused it (HTTP ${res.status})`); return; }
  showResult(doc.results[0], source, performance.now() - t0);
}

// ----- drawing -----
function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
}
clearPad();

function point(ev) {
  const r = pad.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * pad.width / r.width, y: (ev.clientY - r.top) * pad.height / r.height };
}

function stroke(to) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = pad.width / 14;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  last = to;
  hasInk = true;
}

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(sendPad, delay);
}

function sendPad() {
  if (!hasInk) return;
  pad.toBlob((blob) => classify(blob, "draw", { "Content-Type": "image/png" }), "image/png");
}

pad.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  pad.setPointerCapture(ev.pointerId);
  drawing = true;
  last = point(ev);
  stroke(last);
});
pad.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  stroke(point(ev));
  schedule(250); // debounced: at most one request per pause while drawing
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { if (drawing) { drawing = false; schedule(60); } });
}
$("clear").addEventListener("click", () => { clearTimeout(timer); seq++; shownSeq = seq; clearPad(); resetResult(); hideMessage(); });

// ----- photos -----
function sendFile(input) {
  const file = input.files && input.files[0];
  if (!file) return;
  const preview = $("photo");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.onerror = () => { preview.hidden = true; }; // not a picture the browser can show
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  if (file.size > maxUpload) {
    showMessage(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB, over the server's ${(maxUpload / 1048576).toFixed(0)} MB limit; send a smaller picture`);
    input.value = "";
    return;
  }
  const form = new FormData();
  form.append("image", file, file.name);
  classify(form, "photo");
  input.value = "";
}
$("file").addEventListener("change", (ev) => sendFile(ev.target));
$("camera").addEventListener("change", (ev) => sendFile(ev.target));
