// The page: load the wasm module and the generator weights (same origin), then draw on request.
import init, { DigitGenerator } from './pkg/cdcgan_web.js';

const SIDE = 28;
const $ = (id) => document.getElementById(id);
const canvas = $('out');
let generator = null;

function status(text) {
  $('status').textContent = text;
}

function mode() {
  return document.querySelector('input[name=mode]:checked').value;
}

// What to draw: labels in order and the number of columns.
function request() {
  if (mode() === 'grid') {
    const n = Math.min(16, Math.max(1, parseInt($('per-class').value, 10) || 1));
    const labels = [];
    for (let c = 0; c < 10; c++) for (let i = 0; i < n; i++) labels.push(c);
    return { labels, cols: n };
  }
  const digits = $('number').value.trim();
  if (!/^[0-9]{1,16}$/.test(digits)) {
    throw new Error('type 1 to 16 digits (0-9)');
  }
  return { labels: [...digits].map(Number), cols: digits.length };
}

function seed() {
  const s = parseInt($('seed').value, 10);
  return Number.isFinite(s) && s >= 0 ? s : 0;
}

// Paints n grey 28x28 images, row-major in `cols` columns, scaled with sharp pixels.
function paint(pixels, n, cols) {
  const rows = Math.ceil(n / cols);
  const w = cols * SIDE, h = rows * SIDE;
  const small = new ImageData(w, h);
  for (let k = 0; k < n; k++) {
    const ox = (k % cols) * SIDE, oy = Math.floor(k / cols) * SIDE;
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const v = pixels[k * SIDE * SIDE + y * SIDE + x];
        const i = ((oy + y) * w + ox + x) * 4;
        small.data[i] = small.data[i + 1] = small.data[i + 2] = v;
        small.data[i + 3] = 255;
      }
    }
  }
  const scale = Math.max(1, Math.min(4, Math.floor(800 / w)));
  const tmp = new OffscreenCanvas(w, h);
  tmp.getContext('2d').putImageData(small, 0, 0);
  canvas.width = w * scale;
  canvas.height = h * scale;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function draw() {
  if (!generator) return;
  let req;
  try {
    req = request();
  } catch (e) {
    status(e.message);
    return;
  }
  const t0 = performance.now();
  const pixels = generator.generate(Uint8Array.from(req.labels), BigInt(seed()));
  const ms = performance.now() - t0;
  paint(pixels, req.labels.length, req.cols);
  const what = mode() === 'grid' ? `${req.labels.length} digits` : `“${$('number').value}”`;
  status(`${what}, seed ${seed()}: generated in ${ms.toFixed(1)} ms`);
  history.replaceState(null, '', `#${mode() === 'grid' ? 'grid=' + req.cols : 'n=' + $('number').value}&seed=${seed()}`);
  document.body.dataset.state = 'ready';
  document.body.dataset.ms = ms.toFixed(1);
}

// #n=2026&seed=3 or #grid=8&seed=3 reproduce a picture.
function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  if (p.has('grid')) {
    document.querySelector('input[value=grid]').checked = true;
    $('per-class').value = p.get('grid');
  } else if (p.has('n')) {
    $('number').value = p.get('n');
  }
  if (p.has('seed')) $('seed').value = p.get('seed');
  showFields();
}

function showFields() {
  $('number-field').hidden = mode() !== 'number';
  $('grid-field').hidden = mode() !== 'grid';
  $('digit-pad').hidden = mode() !== 'number';
}

function wire() {
  $('controls').addEventListener('submit', (e) => { e.preventDefault(); draw(); });
  $('new-style').addEventListener('click', () => {
    $('seed').value = Math.floor(Math.random() * 2 ** 32);
    draw();
  });
  for (const r of document.querySelectorAll('input[name=mode]')) {
    r.addEventListener('change', () => { showFields(); draw(); });
  }
  for (let d = 0; d < 10; d++) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = d;
    b.addEventListener('click', () => {
      const v = $('number').value;
      $('number').value = (v.length >= 16 ? v.slice(1) : v) + d;
      draw();
    });
    $('digit-pad').append(b);
  }
}

async function main() {
  wire();
  fromHash();
  try {
    const t0 = performance.now();
    await init();
    const res = await fetch('generator.safetensors');
    if (!res.ok) throw new Error(`generator.safetensors: HTTP ${res.status}`);
    generator = new DigitGenerator(new Uint8Array(await res.arrayBuffer()));
    document.body.dataset.loadMs = (performance.now() - t0).toFixed(0);
    draw();
  } catch (e) {
    document.body.dataset.state = 'error';
    status(`Could not start: ${e.message ?? e}`);
  }
}

main();
