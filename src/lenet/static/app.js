// Draw on #pad with a mouse, pen or finger; after each change the canvas goes to /predict as a PNG
// and the page shows the ten probabilities and the 28x28 input the server made of the drawing.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const predictionEl = document.getElementById("prediction");
const statusEl = document.getElementById("status");
const bars = document.getElementById("bars");
let drawing = false, last = null, hasInk = false;
let inFlight = false, pending = false;
// State exposed for scripts and tests: the newest result and whether a prediction is still coming.
window.lenet = { lastInput: null, lastResult: null, requests: 0, busy: () => inFlight || pending };

for (let digit = 0; digit < 10; digit++) {
  bars.insertAdjacentHTML("beforeend",
    `<div class="bar" id="bar-${digit}"><span class="digit">${digit}</span>` +
    `<span class="track"><span class="fill"></span></span><span class="value">0.000</span></div>`);
}

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 112, 112);
  hasInk = false;
  predictionEl.textContent = "?";
  predictionEl.dataset.class = "";
  statusEl.textContent = "draw a digit";
  showProbabilities(new Array(10).fill(0), -1);
  window.lenet.lastInput = null;
  window.lenet.lastResult = null;
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

// At most one request in flight; changes made meanwhile are sent when it returns.
function requestPrediction() {
  if (!hasInk) return;
  if (inFlight) { pending = true; return; }
  inFlight = true;
  pad.toBlob(async (blob) => {
    try {
      const response = await fetch("/predict?top_k=3&include_input=1",
                                   { method: "POST", headers: { "Content-Type": "image/png" }, body: blob });
      const result = await response.json();
      window.lenet.requests += 1;
      if (!response.ok) {
        statusEl.textContent = result.error || `error ${response.status}`;
      } else {
        show(result);
      }
    } catch (error) {
      statusEl.textContent = `server unreachable (${error})`;
    } finally {
      inFlight = false;
      if (pending) { pending = false; requestPrediction(); }
    }
  }, "image/png");
}

function showProbabilities(probabilities, best) {
  probabilities.forEach((p, digit) => {
    const bar = document.getElementById(`bar-${digit}`);
    bar.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    bar.querySelector(".value").textContent = p.toFixed(3);
    bar.classList.toggle("best", digit === best);
  });
}

function show(result) {
  predictionEl.textContent = String(result["class"]);
  predictionEl.dataset.class = String(result["class"]);
  statusEl.textContent = `${(100 * result.probabilities[result["class"]]).toFixed(1)}% sure`;
  showProbabilities(result.probabilities, result["class"]);
  const pixels = seen.createImageData(28, 28);
  result.input.forEach((row, y) => row.forEach((value, x) => {
    const offset = 4 * (28 * y + x), level = Math.round(255 * value);
    pixels.data[offset] = pixels.data[offset + 1] = pixels.data[offset + 2] = level;
    pixels.data[offset + 3] = 255;
  }));
  // Draw 28x28 then scale it up 4x without smoothing, so each input pixel is a visible square.
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  small.getContext("2d").putImageData(pixels, 0, 0);
  seen.imageSmoothingEnabled = false;
  seen.drawImage(small, 0, 0, 112, 112);
  window.lenet.lastInput = result.input;
  window.lenet.lastResult = result;
}

async function loadModelInfo() {
  try {
    const info = await (await fetch("/model")).json();
    const accuracy = info.test_accuracy == null ? "" : `, test accuracy ${(100 * info.test_accuracy).toFixed(2)}%`;
    document.getElementById("model-info").textContent =
      `${info.model} (recipe ${info.recipe}, step ${info.step}${accuracy})`;
  } catch (error) {
    document.getElementById("model-info").textContent = "model information unavailable";
  }
}

clearPad();
loadModelInfo();
