// Draw on #pad with a mouse, pen or finger, or drop or choose a picture (a phone offers its camera
// through the file input). The canvas, or the picture as it is, goes to /predict (one digit) or
// /read (several digits, "a number"), and the page shows the answer, the probabilities and the
// 28x28 input the server made of each digit. A model of something other than digits (GET /model
// says reads_digits: false) makes it a page to classify a picture: no drawing, no numbers, the
// model's class names on the bars.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const predictionEl = document.getElementById("prediction");
const statusEl = document.getElementById("status");
const bars = document.getElementById("bars");
const digitsEl = document.getElementById("digits");
const fileInput = document.getElementById("file");
const numberMode = document.getElementById("number-mode");
let drawing = false, last = null, hasInk = false, showingPicture = false, drawable = true;
let classes = [..."0123456789"];
let inFlight = false, pending = false;
// State exposed for scripts and tests: the newest result and whether a prediction is still coming.
window.lenet = { lastInput: null, lastResult: null, lastError: null, requests: 0,
                 busy: () => inFlight || pending };

function buildBars() {
  bars.replaceChildren();
  classes.forEach((name, index) => {
    bars.insertAdjacentHTML("beforeend",
      `<div class="bar" id="bar-${index}"><span class="digit"></span>` +
      `<span class="track"><span class="fill"></span></span><span class="value">0.000</span></div>`);
    bars.lastChild.querySelector(".digit").textContent = name;  // a name from classes.txt is text, not HTML
  });
}
buildBars();

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 112, 112);
  hasInk = false;
  showingPicture = false;
  predictionEl.textContent = "?";
  predictionEl.dataset.class = "";
  statusEl.textContent = !drawable ? "choose a picture" : numberMode.checked ? "write a number" : "draw a digit";
  showProbabilities(new Array(classes.length).fill(0), -1);
  digitsEl.replaceChildren();
  window.lenet.lastInput = null;
  window.lenet.lastResult = null;
  window.lenet.lastError = null;
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * pad.width / box.width,
           y: (event.clientY - box.top) * pad.height / box.height };
}

function stroke(from, to) {
  ink.strokeStyle = "#fff";
  ink.lineWidth = 18;
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(from.x, from.y);
  ink.lineTo(to.x, to.y);
  ink.stroke();
  hasInk = true;
}

pad.addEventListener("pointerdown", (event) => {
  if (!drawable) return;
  if (showingPicture) clearPad();  // drawing starts afresh after a picture
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  stroke(last, last);
  requestPrediction();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const here = point(event);
  stroke(last, here);
  last = here;
  requestPrediction();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { drawing = false; requestPrediction(); });
}
document.getElementById("clear").addEventListener("click", clearPad);

// A wider pad for a number; switching clears it.
numberMode.addEventListener("change", () => {
  pad.width = numberMode.checked ? 560 : 280;
  pad.classList.toggle("wide", numberMode.checked);
  bars.hidden = document.querySelector(".result figure").hidden = numberMode.checked;
  digitsEl.hidden = !numberMode.checked;
  clearPad();
});

// A picture, chosen or dropped, is sent as it is (the server normalizes it) and shown on the pad.
fileInput.addEventListener("change", () => { if (fileInput.files.length) readPicture(fileInput.files[0]); });
pad.addEventListener("dragover", (event) => { event.preventDefault(); pad.classList.add("dragging"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
pad.addEventListener("drop", (event) => {
  event.preventDefault();
  pad.classList.remove("dragging");
  if (event.dataTransfer.files.length) readPicture(event.dataTransfer.files[0]);
});

async function readPicture(file) {
  clearPad();
  showingPicture = true;
  inFlight = true;
  statusEl.textContent = `reading ${file.name}…`;
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale, h = bitmap.height * scale;
    ink.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  } catch (error) {
    // The browser cannot draw it (HEIC, say); the server may still read it, or will say why not.
  }
  await send(file, file.type || "application/octet-stream");
  inFlight = false;
}

// At most one request in flight; changes made meanwhile are sent when it returns.
function requestPrediction() {
  if (!hasInk) return;
  if (inFlight) { pending = true; return; }
  inFlight = true;
  pad.toBlob(async (blob) => {
    await send(blob, "image/png");
    inFlight = false;
    if (pending) { pending = false; requestPrediction(); }
  }, "image/png");
}

async function send(body, contentType) {
  const path = numberMode.checked ? "/read" : "/predict";
  try {
    const response = await fetch(`${path}?top_k=3&include_input=1`,
                                 { method: "POST", headers: { "Content-Type": contentType }, body });
    const result = await response.json();
    window.lenet.requests += 1;
    if (!response.ok) {
      showError(result.error || `error ${response.status}`);
    } else if (numberMode.checked) {
      showNumber(result);
    } else {
      show(result);
    }
  } catch (error) {
    statusEl.textContent = `server unreachable (${error})`;
  }
}

function showError(message) {
  window.lenet.lastError = message;
  predictionEl.textContent = "–";
  predictionEl.dataset.class = "";
  // "no ink found" and "no digit(s) found" mean the picture holds nothing to read: say it plainly.
  statusEl.textContent = /no (ink|digits?|item) found/.test(message)
    ? `No ${drawable ? "digit" : "item"} found in this picture. (${message})` : message;
}

function showProbabilities(probabilities, best) {
  probabilities.forEach((p, digit) => {
    const bar = document.getElementById(`bar-${digit}`);
    bar.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    bar.querySelector(".value").textContent = p.toFixed(3);
    bar.classList.toggle("best", digit === best);
  });
}

// A 28x28 input drawn into CONTEXT scaled up without smoothing, so each input pixel is a visible square.
function drawInput(context, input, size) {
  const pixels = context.createImageData(28, 28);
  input.forEach((row, y) => row.forEach((value, x) => {
    const offset = 4 * (28 * y + x), level = Math.round(255 * value);
    pixels.data[offset] = pixels.data[offset + 1] = pixels.data[offset + 2] = level;
    pixels.data[offset + 3] = 255;
  }));
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  small.getContext("2d").putImageData(pixels, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, size, size);
}

// Verdicts that answer; any other says why lenet declined (see lenet.decline).
const ANSWERED = ["digit", "item"];

function show(result) {
  window.lenet.lastError = null;
  window.lenet.lastResult = result;
  const closest = result.top_k[0];
  if (ANSWERED.includes(result.verdict)) {
    predictionEl.textContent = result.label ?? String(result["class"]);
    predictionEl.dataset.class = String(result["class"]);
    statusEl.textContent = `${(100 * result.confidence).toFixed(1)}% sure`;
  } else if (result.verdict === "no ink") {
    predictionEl.textContent = "–";
    predictionEl.dataset.class = "";
    statusEl.textContent = `No ${drawable ? "digit" : "item"} found in this picture. (no ink)`;
  } else {
    predictionEl.textContent = "?";
    predictionEl.dataset.class = "";
    statusEl.textContent = closest
      ? `${result.verdict} (closest: ${closest.label}, ${(100 * closest.probability).toFixed(0)}%)`
      : result.verdict === "several digits"
        ? "several digits: tick “several digits (a number)” to read them" : `${result.verdict}`;
  }
  predictionEl.dataset.verdict = result.verdict;
  if (result.probabilities) {
    showProbabilities(result.probabilities, closest["class"]);
  } else {
    showProbabilities(classes.map(() => 0), -1);
  }
  if (result.input) drawInput(seen, result.input, 112);
  window.lenet.lastInput = result.input ?? null;
}

function showNumber(result) {
  window.lenet.lastError = null;
  predictionEl.textContent = result.reading || "–";
  predictionEl.dataset.class = result.number ?? "";
  predictionEl.dataset.verdict = result.verdict;
  const doubted = result.digits.filter((d) => !ANSWERED.includes(d.verdict)).length;
  if (!result.digits.length) {
    statusEl.textContent = result.verdict;
  } else if (doubted) {
    statusEl.textContent = `${result.digits.length} marks, ${doubted} not read as a digit (shown as ?)`;
  } else {
    const least = Math.min(...result.digits.map((d) => d.confidence));
    statusEl.textContent = `${result.digits.length} digits, the least sure ${(100 * least).toFixed(1)}%`;
  }
  digitsEl.replaceChildren(...result.digits.map((digit) => {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 56;
    drawInput(canvas.getContext("2d"), digit.input, 56);
    const caption = document.createElement("figcaption");
    const answered = ANSWERED.includes(digit.verdict);
    figure.classList.toggle("doubt", !answered);
    caption.textContent = answered
      ? `${digit["class"]} (${(100 * digit.confidence).toFixed(0)}%)`
      : `? ${digit.verdict} (closest ${digit.top_k[0].label})`;
    figure.append(canvas, caption);
    return figure;
  }));
  window.lenet.lastInput = result.digits.map((d) => d.input);
  window.lenet.lastResult = result;
}

async function loadModelInfo() {
  try {
    const info = await (await fetch("/model")).json();
    const accuracy = info.test_accuracy == null ? "" : `, test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`;
    document.getElementById("model-info").textContent =
      `${info.model} (recipe ${info.recipe}, step ${info.step}${accuracy}` +
      `${info.dataset && info.dataset !== "mnist" ? `, ${info.dataset}` : ""})`;
    // Rebuilt only when something changes: a digit may already be on its way to /predict.
    const renamed = Array.isArray(info.classes) && info.classes.join("\n") !== classes.join("\n");
    if (renamed) classes = info.classes;
    if (info.reads_digits === false) becomeClassifier();
    if (renamed || !drawable) { buildBars(); clearPad(); }
  } catch (error) {
    document.getElementById("model-info").textContent = "model information unavailable";
  }
}

// For a model of pictures other than digits: pick or drop a picture, the pad shows it.
function becomeClassifier() {
  drawable = false;
  document.body.classList.add("pictures");
  document.title = "lenet: classify a picture";
  document.querySelector("h1").textContent = "Classify a picture";
  document.getElementById("clear").hidden = true;
  numberMode.closest("label").hidden = true;
  numberMode.checked = false;
  pad.setAttribute("aria-label", "the chosen picture; drop a picture here");
  pad.style.cursor = "default";
}

clearPad();
window.lenet.ready = loadModelInfo();
