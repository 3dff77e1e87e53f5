// mixma's page: search the index, play a moment, ask about it. Plain DOM, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");  // with `mixma serve --token`
let selected = null;  // the result being played

function withToken(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function api(url, init) {
  let response;
  try {
    response = await fetch(withToken(url), init);
  } catch (err) {
    throw new Error("the server cannot be reached: is `mixma serve` still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON */ }
  if (!response.ok) {
    const why = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new Error(response.status === 401 ? `${why} (open the page as /?token=YOUR_TOKEN)` : why);
  }
  return body;
}

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.setAttribute("role", isError ? "alert" : "status");
}

function pageUrl(q) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (token) params.set("token", token);
  const query = params.toString();
  return "/" + (query ? "?" + query : "");
}

async function search(q, { push = true } = {}) {
  q = q.trim();
  $("q").value = q;
  if (push) history.pushState({ q }, "", pageUrl(q));
  document.title = q ? `${q} — mixma` : "mixma — search your videos";
  $("results").replaceChildren();
  if (!q) {
    say("Type what you are looking for above and press Enter: results are the moments of your videos that match it best.");
    return;
  }
  say(`Searching for “${q}”…`);
  try {
    const body = await api(`/api/search?q=${encodeURIComponent(q)}&k=24`);
    if (!body.count) {
      say(`No moment matches “${q}”. Try other or fewer words, or add videos (mixma index ... or the upload below).`);
      return;
    }
    say(`${body.count} moment${body.count === 1 ? "" : "s"} for “${q}”: choose one to play it.`);
    $("results").replaceChildren(...body.results.map(resultCard));
  } catch (err) {
    say(`Search failed: ${err.message}`, true);
  }
}

function resultCard(hit, i) {
  const item = document.createElement("li");
  const card = document.createElement("button");
  card.type = "button";
  card.className = "hit";
  card.dataset.index = i;
  card.setAttribute("aria-pressed", "false");
  card.setAttribute("aria-label", `${hit.name}, ${clock(hit.start)} to ${clock(hit.end)}, score ${hit.score.toFixed(3)}`);
  let picture;
  if (hit.thumbnail_url) {
    picture = document.createElement("img");
    picture.src = withToken(hit.thumbnail_url);
    picture.alt = "";
    picture.loading = "lazy";
  } else {
    picture = document.createElement("div");
    picture.className = "noimg";
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = '<div class="name"></div><div class="when"></div><div class="score"></div>';
  meta.querySelector(".name").textContent = hit.name;
  meta.querySelector(".when").textContent = `${clock(hit.start)} – ${clock(hit.end)}`;
  meta.querySelector(".score").textContent = `score ${hit.score.toFixed(3)}`;
  card.append(picture, meta);
  card.addEventListener("click", () => play(hit, card));
  item.append(card);
  return item;
}

function play(hit, card) {
  selected = hit;
  document.querySelectorAll(".hit[aria-pressed=true]").forEach((c) => c.setAttribute("aria-pressed", "false"));
  card.setAttribute("aria-pressed", "true");
  const player = $("player");
  // a media fragment: the browser seeks to the start and pauses at the end of the moment
  player.src = withToken(hit.video_url) + `#t=${hit.start.toFixed(3)},${hit.end.toFixed(3)}`;
  player.dataset.videoId = hit.video_id;
  $("now-playing").textContent = `${hit.name} · ${clock(hit.start)} – ${clock(hit.end)}`;
  $("answer").textContent = "";
  $("player-panel").hidden = false;
  player.play().catch(() => { /* autoplay refused: the controls are there */ });
  $("player-panel").scrollIntoView({ block: "nearest" });
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!selected || !question) return;
  const body = { video_id: selected.video_id, question };
  if ($("moment-only").checked) Object.assign(body, { start: selected.start, end: selected.end });
  const answer = $("answer"), button = $("ask-button");
  answer.className = "";
  answer.textContent = "Thinking…";
  button.disabled = true;
  try {
    const reply = await api("/api/ask", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    answer.textContent = reply.answer || "(the model gave an empty answer)";
  } catch (err) {
    answer.className = "error";
    answer.textContent = `No answer: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0], status = $("upload-status");
  if (!file) return;
  status.className = "";
  status.textContent = `Uploading and indexing ${file.name}…`;
  try {
    const reply = await api(`/api/upload?filename=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
    const n = reply.video.num_moments;
    status.textContent = `${file.name} is indexed (${n} moment${n === 1 ? "" : "s"}): search for it.`;
    showHealth();
  } catch (err) {
    status.className = "error";
    status.textContent = `Upload failed: ${err.message}`;
  }
}

async function showHealth() {
  try {
    const h = await api("/api/health");
    $("status").textContent = `${h.videos} videos, ${h.moments} moments (${h.model})` + (h.ask ? " · ask on" : " · ask off: start with --malmm RUN");
    $("upload-panel").hidden = !h.upload;
    $("ask").hidden = !h.ask;
    if (!h.ask) $("answer").textContent = "Questions need a trained MA-LMM: start mixma serve with --malmm RUN.";
  } catch (err) {
    $("status").textContent = "";
    say(`The service does not answer: ${err.message}`, true);
  }
}

function moveFocus(event) {
  const card = event.target.closest(".hit");
  if (!card || !["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(event.key)) return;
  const cards = [...document.querySelectorAll(".hit")];
  const perRow = Math.max(1, Math.round($("results").clientWidth / card.offsetWidth));
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -perRow, ArrowDown: perRow }[event.key];
  const next = cards[Number(card.dataset.index) + step];
  if (next) { next.focus(); event.preventDefault(); }
}

$("search").addEventListener("submit", (event) => { event.preventDefault(); search($("q").value); });
$("ask").addEventListener("submit", ask);
$("upload").addEventListener("submit", upload);
$("results").addEventListener("keydown", moveFocus);
$("q").addEventListener("keydown", (event) => {  // from the search box straight to the results
  const first = document.querySelector(".hit");
  if (event.key === "ArrowDown" && first) { first.focus(); event.preventDefault(); }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "/" && !["INPUT", "TEXTAREA"].includes(document.activeElement.tagName)) {
    event.preventDefault();
    $("q").focus();
  }
});
window.addEventListener("popstate", () => search(new URLSearchParams(location.search).get("q") || "", { push: false }));

showHealth();
search(new URLSearchParams(location.search).get("q") || "", { push: false });
if (!new URLSearchParams(location.search).get("q")) $("q").focus();
