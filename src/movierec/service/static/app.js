// movierec page: plain ES module, no framework, no build step.
// Every piece of data is rendered with textContent / attributes, never innerHTML.

const $ = (sel) => document.querySelector(sel);
const POSTER_BASE = "https://image.tmdb.org/t/p/w185";

const state = {
  session: { liked: [], disliked: [], liked_tags: [], disliked_tags: [], filters: {}, favourites: [] },
  genres: [],
  recVersion: 0,
  recSeq: 0,
  offline: false,
};

// ------------------------------------------------------------------ network
class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

async function api(method, url, body) {
  let res;
  try {
    res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (err) {
    setOffline(true);
    throw err;
  }
  setOffline(false);
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data && data.detail ? data.detail : res.statusText);
  return data;
}

let retryTimer = null;
function setOffline(off) {
  if (off === state.offline) return;
  state.offline = off;
  $("#offline").hidden = !off;
  if (off && !retryTimer) {
    retryTimer = setInterval(async () => {
      try {
        await fetch("/api/health", { credentials: "same-origin" });
        clearInterval(retryTimer);
        retryTimer = null;
        setOffline(false);
        if (!state.genres.length) await loadGenres();
        refresh();
      } catch (_) { /* still down */ }
    }, 3000);
  }
}

function notify(msg) {
  $("#rec-status").textContent = msg;
}

// ------------------------------------------------------------------ helpers
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  // Material Design icons (Apache 2.0): thumb_up, thumb_down
  up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
  down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
};

function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "ico");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

function movieName(m) {
  return m.display_title || m.title || `Movie ${m.movie_id}`;
}

function hueOf(id) {
  return (Number(id) * 137.508) % 360;
}

function poster(m, cls = "poster") {
  const box = el("div", { class: cls });
  box.style.setProperty("--hue", String(hueOf(m.movie_id)));
  const ph = el("div", { class: "placeholder", "aria-hidden": "true" },
    el("span", { class: "ph-title", text: movieName(m) }),
    el("span", { class: "ph-year", text: m.year ? String(m.year) : "" }));
  box.append(ph);
  if (m.poster_path && /^\/[\w.-]+$/.test(m.poster_path)) {
    const img = el("img", { src: POSTER_BASE + m.poster_path, alt: "", loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => img.remove());
    img.addEventListener("load", () => box.classList.add("has-img"));
    box.append(img);
  }
  return box;
}

function fmtRating(m) {
  if (m.mean_rating === null || m.mean_rating === undefined) return "no ratings";
  return `★ ${Number(m.mean_rating).toFixed(1)} (${m.rating_count})`;
}

function isFav(id) {
  return state.session.favourites.includes(id);
}

function feedbackOf(id) {
  if (state.session.liked.some((m) => m.movie_id === id)) return "like";
  if (state.session.disliked.some((m) => m.movie_id === id)) return "dislike";
  return null;
}

// ------------------------------------------------------------------ cards
function movieActions(m) {
  const name = movieName(m);
  const fb = feedbackOf(m.movie_id);
  return el("div", { class: "actions" },
    el("button", {
      type: "button", class: "btn icon like", "aria-label": `Like ${name}`, "aria-pressed": fb === "like" ? "true" : "false",
      title: "Like", onclick: () => sendItem("movie", m.movie_id, "like"),
    }, icon("up")),
    el("button", {
      type: "button", class: "btn icon dislike", "aria-label": `Dislike ${name}`, "aria-pressed": fb === "dislike" ? "true" : "false",
      title: "Dislike", onclick: () => sendItem("movie", m.movie_id, "dislike"),
    }, icon("down")),
    el("button", {
      type: "button", class: "btn icon save", "aria-label": `${isFav(m.movie_id) ? "Remove" : "Save"} ${name} ${isFav(m.movie_id) ? "from" : "to"} favourites`,
      "aria-pressed": isFav(m.movie_id) ? "true" : "false", title: "Save to favourites",
      text: isFav(m.movie_id) ? "★" : "☆", onclick: () => toggleFav(m.movie_id),
    }));
}

function movieCard(m) {
  const name = movieName(m);
  const li = el("li", { class: "card", dataset: { movieId: String(m.movie_id) } });
  const open = el("button", { type: "button", class: "card-open", "aria-label": `Open ${name}`, onclick: () => openMovie(m.movie_id) },
    poster(m));
  const body = el("div", { class: "card-body" },
    el("h3", { class: "card-title" }, el("button", { type: "button", class: "linkish", text: name, onclick: () => openMovie(m.movie_id) })),
    el("p", { class: "meta", text: [m.year || "", (m.genres || []).slice(0, 3).join(" · ")].filter(Boolean).join(" — ") }),
    el("p", { class: "meta rating", text: fmtRating(m) }),
    m.reason ? el("p", { class: "reason", text: m.reason }) : null,
    movieActions(m));
  li.append(open, body);
  return li;
}

function tagChip(name, { held = null } = {}) {
  const li = el("li", { class: "chip tag", dataset: { tag: name } });
  li.append(el("span", { class: "chip-label", text: name }));
  if (held === null) {
    li.append(
      el("button", { type: "button", class: "btn icon tiny like", "aria-label": `Like tag ${name}`, title: "Like tag", text: "+", onclick: () => sendItem("tag", name, "like") }),
      el("button", { type: "button", class: "btn icon tiny dislike", "aria-label": `Dislike tag ${name}`, title: "Dislike tag", text: "−", onclick: () => sendItem("tag", name, "dislike") }));
  } else {
    li.append(el("button", { type: "button", class: "btn icon tiny", "aria-label": `Remove tag ${name}`, title: "Remove", text: "×", onclick: () => removeItem("tag", name) }));
  }
  return li;
}

// ------------------------------------------------------------------ session bar
function sortableChip(m, list, feedback) {
  const name = movieName(m);
  const li = el("li", {
    class: "chip movie", draggable: "true", tabindex: "0", dataset: { value: String(m.movie_id) },
    "aria-label": `${name}, ${list.indexOf(m) + 1} of ${list.length}`,
  });
  li.append(
    el("button", { type: "button", class: "btn icon tiny move", "aria-label": `Move ${name} left (less important)`, text: "◀", onclick: () => move(feedback, m.movie_id, -1) }),
    el("span", { class: "chip-label", text: name }),
    el("button", { type: "button", class: "btn icon tiny move", "aria-label": `Move ${name} right (more important)`, text: "▶", onclick: () => move(feedback, m.movie_id, +1) }),
    el("button", { type: "button", class: "btn icon tiny", "aria-label": `Remove ${name}`, text: "×", onclick: () => removeItem("movie", m.movie_id) }));
  li.addEventListener("keydown", (ev) => {
    if (ev.target !== li) return;
    if (ev.altKey && (ev.key === "ArrowLeft" || ev.key === "ArrowRight")) {
      ev.preventDefault();
      move(feedback, m.movie_id, ev.key === "ArrowLeft" ? -1 : 1, true);
    } else if (ev.key === "Delete" || ev.key === "Backspace") {
      ev.preventDefault();
      removeItem("movie", m.movie_id);
    }
  });
  li.addEventListener("click", (ev) => { if (ev.target === li || ev.target.classList.contains("chip-label")) openMovie(m.movie_id); });
  return li;
}

function renderSession() {
  const s = state.session;
  for (const [sel, list, fb] of [["#liked", s.liked, "like"], ["#disliked", s.disliked, "dislike"]]) {
    const ul = $(sel);
    ul.replaceChildren(...list.map((m) => sortableChip(m, list, fb)));
    if (!list.length) ul.append(el("li", { class: "empty", text: fb === "like" ? "Like a movie with the thumbs-up button" : "Nothing disliked" }));
  }
  for (const [sel, list, fb] of [["#liked-tags", s.liked_tags, "like"], ["#disliked-tags", s.disliked_tags, "dislike"]]) {
    const ul = $(sel);
    ul.replaceChildren(...list.map((t) => tagChip(t, { held: fb })));
    if (!list.length) ul.append(el("li", { class: "empty", text: fb === "like" ? "Like a tag with +" : "Nothing disliked" }));
  }
  $("#fav-count").textContent = String(s.favourites.length);
  renderFilters();
}

// drag and drop over the sortable lists
function setupDrag(ul) {
  let dragged = null;
  ul.addEventListener("dragstart", (ev) => {
    const li = ev.target.closest("li.chip");
    if (!li) return;
    dragged = li;
    li.classList.add("dragging");
    ev.dataTransfer.effectAllowed = "move";
    ev.dataTransfer.setData("text/plain", li.dataset.value);
  });
  ul.addEventListener("dragover", (ev) => {
    if (!dragged) return;
    ev.preventDefault();
    const over = ev.target.closest("li.chip");
    if (!over || over === dragged) return;
    const r = over.getBoundingClientRect();
    const after = ev.clientX > r.left + r.width / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });
  ul.addEventListener("drop", (ev) => ev.preventDefault());
  ul.addEventListener("dragend", () => {
    if (!dragged) return;
    dragged.classList.remove("dragging");
    dragged = null;
    const ordered = [...ul.querySelectorAll("li.chip")].map((li) => Number(li.dataset.value));
    sendOrder(ul.dataset.kind, ul.dataset.feedback, ordered);
  });
}

async function move(feedback, id, delta, keepFocus = false) {
  const list = (feedback === "like" ? state.session.liked : state.session.disliked).map((m) => m.movie_id);
  const i = list.indexOf(id);
  const j = i + delta;
  if (i < 0 || j < 0 || j >= list.length) return;
  [list[i], list[j]] = [list[j], list[i]];
  await sendOrder("movie", feedback, list);
  if (keepFocus) {
    const sel = feedback === "like" ? "#liked" : "#disliked";
    const li = document.querySelector(`${sel} li[data-value="${id}"]`);
    if (li) li.focus();
  }
}

// ------------------------------------------------------------------ actions
async function mutate(promise) {
  try {
    const out = await promise;
    return out;
  } catch (err) {
    if (err instanceof ApiError) notify(`Could not do that: ${err.message}`);
    throw err;
  }
}

async function sendItem(kind, value, feedback) {
  state.session = await mutate(api("POST", "/api/session/items", { kind, value, feedback }));
  renderSession();
  rerenderSearch();
  await loadRecs();
}

async function removeItem(kind, value) {
  state.session = await mutate(api("DELETE", "/api/session/items", { kind, value }));
  renderSession();
  rerenderSearch();
  await loadRecs();
}

async function sendOrder(kind, feedback, ordered) {
  state.session = await mutate(api("PUT", "/api/session/order", { kind, feedback, ordered }));
  renderSession();
  await loadRecs();
}

async function toggleFav(id) {
  const was = isFav(id);
  const favs = await mutate(api(was ? "DELETE" : "POST", "/api/favourites", { movie_id: id }));
  state.session.favourites = favs.map((m) => m.movie_id);
  $("#fav-count").textContent = String(favs.length);
  for (const btn of document.querySelectorAll(`li.card[data-movie-id="${id}"] .save`)) {
    const fav = isFav(id);
    btn.textContent = fav ? "★" : "☆";
    btn.setAttribute("aria-pressed", fav ? "true" : "false");
    const name = btn.getAttribute("aria-label").replace(/^(Save|Remove) /, "").replace(/ (to|from) favourites$/, "");
    btn.setAttribute("aria-label", `${fav ? "Remove" : "Save"} ${name} ${fav ? "from" : "to"} favourites`);
  }
  if ($("#fav-view").open) renderFavs(favs);
}

// ------------------------------------------------------------------ recommendations
async function loadRecs() {
  const seq = ++state.recSeq;
  const ul = $("#recs");
  ul.setAttribute("aria-busy", "true");
  const t0 = performance.now();
  let data;
  try {
    data = await api("GET", "/api/recommendations?n=24&n_tags=12");
  } catch (err) {
    if (err instanceof ApiError && err.status === 503) {
      notify("The recommender is busy, retrying…");
      setTimeout(loadRecs, 1000);
    }
    return;
  }
  if (seq !== state.recSeq) return; // a newer request is on its way
  ul.replaceChildren(...data.movies.map(movieCard));
  if (!data.movies.length) ul.append(el("li", { class: "empty wide", text: "No movie matches these filters. Try loosening them." }));
  const tags = $("#suggested-tags");
  tags.replaceChildren(...data.tags.map((t) => tagChip(t.tag)));
  if (!data.tags.length) tags.append(el("li", { class: "empty", text: "Like a movie to get tag suggestions" }));
  ul.setAttribute("aria-busy", "false");
  const ms = Math.round(performance.now() - t0);
  notify(data.fallback ? `Popular picks — like something to personalise (${ms} ms)` : `Updated in ${ms} ms`);
  state.recVersion += 1;
  document.body.dataset.recVersion = String(state.recVersion);
  document.body.dataset.recMs = String(ms);
}

// ------------------------------------------------------------------ search
let searchTimer = null;
let searchSeq = 0;
let lastResults = null;

function rerenderSearch() {
  if (lastResults) renderResults(lastResults);
}

function renderResults({ movies, tags }) {
  $("#results").hidden = false;
  $("#result-movies").replaceChildren(...movies.map(movieCard));
  const held = new Set([...state.session.liked_tags, ...state.session.disliked_tags]);
  $("#result-tags").replaceChildren(...tags.filter((t) => !held.has(t.tag)).map((t) => tagChip(t.tag)));
  $("#results-empty").hidden = movies.length + tags.length > 0;
}

async function search(q) {
  const seq = ++searchSeq;
  if (!q.trim()) {
    closeResults();
    return;
  }
  const enc = encodeURIComponent(q.slice(0, 200));
  try {
    const [movies, tags] = await Promise.all([
      api("GET", `/api/movies/search?q=${enc}&limit=12`),
      api("GET", `/api/tags/search?q=${enc}&limit=8`),
    ]);
    if (seq !== searchSeq) return;
    lastResults = { movies, tags };
    renderResults(lastResults);
  } catch (_) { /* banner shows */ }
}

function closeResults() {
  lastResults = null;
  $("#results").hidden = true;
  $("#result-movies").replaceChildren();
  $("#result-tags").replaceChildren();
}

// ------------------------------------------------------------------ filters
const DECADES = [1950, 1960, 1970, 1980, 1990, 2000, 2010, 2020];

function renderFilters() {
  const f = state.session.filters || {};
  $("#f-rating").value = f.min_rating ? String(f.min_rating) : "";
  const dec = DECADES.find((d) => f.year_min === d && f.year_max === d + 9);
  $("#f-decade").value = dec ? String(dec) : "";
  $("#f-from").value = f.year_min ?? "";
  $("#f-to").value = f.year_max ?? "";
  const chosen = new Set(f.genres || []);
  for (const box of document.querySelectorAll("#f-genres input")) box.checked = chosen.has(box.value);
  $("#f-genre-count").textContent = chosen.size ? String(chosen.size) : "any";
}

async function loadGenres() {
  try {
    const h = await api("GET", "/api/health");
    state.genres = h.genres || [];
  } catch (_) { return; /* banner shows; the retry loads them */ }
  const fs = $("#f-genres");
  fs.replaceChildren(el("legend", { class: "sr-only", text: "Genres (any of)" }));
  for (const g of state.genres) {
    fs.append(el("label", { class: "check" }, el("input", { type: "checkbox", value: g }), document.createTextNode(g)));
  }
}

async function sendFilters() {
  const num = (v) => (v === "" ? null : Number(v));
  let yMin = num($("#f-from").value);
  let yMax = num($("#f-to").value);
  if (yMin !== null && yMax !== null && yMin > yMax) [yMin, yMax] = [yMax, yMin];
  const body = {
    min_rating: num($("#f-rating").value),
    year_min: yMin,
    year_max: yMax,
    genres: [...document.querySelectorAll("#f-genres input:checked")].map((b) => b.value),
  };
  try {
    state.session = await mutate(api("PUT", "/api/session/filters", body));
  } catch (_) { return; }
  renderSession();
  await loadRecs();
}

function setupFilters() {
  $("#f-decade").addEventListener("change", () => {
    const d = $("#f-decade").value;
    $("#f-from").value = d ? d : "";
    $("#f-to").value = d ? String(Number(d) + 9) : "";
    sendFilters();
  });
  $("#f-rating").addEventListener("change", sendFilters);
  $("#f-from").addEventListener("change", sendFilters);
  $("#f-to").addEventListener("change", sendFilters);
  $("#f-genres").addEventListener("change", sendFilters);
  $("#filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); sendFilters(); });
  $("#f-clear").addEventListener("click", () => {
    $("#f-rating").value = "";
    $("#f-decade").value = "";
    $("#f-from").value = "";
    $("#f-to").value = "";
    for (const b of document.querySelectorAll("#f-genres input")) b.checked = false;
    sendFilters();
  });
}

// ------------------------------------------------------------------ movie view
async function openMovie(id) {
  const dlg = $("#movie-view");
  let m;
  try {
    m = await api("GET", `/api/movies/${id}`);
  } catch (_) { return; }
  $("#mv-title").textContent = movieName(m);
  const runtime = m.runtime ? `${Math.round(m.runtime)} min` : null;
  $("#mv-meta").textContent = [m.year, runtime, (m.genres || []).join(" · "), fmtRating(m)].filter(Boolean).join(" — ");
  $("#mv-poster").replaceChildren(poster(m, "poster big"));
  $("#mv-actions").replaceChildren(movieActions(m));
  $("#mv-overview").textContent = m.overview || "No overview in the catalogue.";
  const held = new Set([...state.session.liked_tags, ...state.session.disliked_tags]);
  $("#mv-tags").replaceChildren(...(m.tags || []).map((t) => tagChip(t, { held: held.has(t) ? "held" : null })));
  const links = [];
  if (m.imdb_url) links.push(el("a", { href: m.imdb_url, target: "_blank", rel: "noopener noreferrer", text: "IMDb" }));
  if (m.tmdb_url) links.push(el("a", { href: m.tmdb_url, target: "_blank", rel: "noopener noreferrer", text: "TMDB" }));
  links.push(el("a", { href: m.trailer_url, target: "_blank", rel: "noopener noreferrer", text: "Trailer (YouTube)" }));
  $("#mv-links").replaceChildren(...links);
  $("#mv-similar").replaceChildren();
  if (!dlg.open) dlg.showModal();
  try {
    const sim = await api("GET", `/api/movies/${id}/similar?n=8`);
    $("#mv-similar").replaceChildren(...sim.map(movieCard));
    if (!sim.length) $("#mv-similar").append(el("li", { class: "empty", text: "No similar movies known." }));
  } catch (_) { /* banner */ }
}

// ------------------------------------------------------------------ favourites
function renderFavs(favs) {
  $("#fav-list").replaceChildren(...favs.map(movieCard));
  $("#fav-empty").hidden = favs.length > 0;
}

async function openFavs() {
  try {
    renderFavs(await api("GET", "/api/favourites"));
  } catch (_) { return; }
  $("#fav-view").showModal();
}

// ------------------------------------------------------------------ start
async function refresh() {
  try {
    state.session = await api("GET", "/api/session");
  } catch (_) { return; }
  renderSession();
  await loadRecs();
}

function skeleton() {
  const ul = $("#recs");
  ul.replaceChildren(...Array.from({ length: 12 }, () => el("li", { class: "card skeleton", "aria-hidden": "true" },
    el("div", { class: "poster" }), el("div", { class: "card-body" }))));
}

async function start() {
  skeleton();
  for (const ul of document.querySelectorAll(".sortable")) setupDrag(ul);
  setupFilters();
  const q = $("#q");
  q.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(q.value), 200);
  });
  q.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { clearTimeout(searchTimer); search(q.value); }
    if (ev.key === "Escape") { q.value = ""; closeResults(); }
  });
  $("#results-close").addEventListener("click", () => { q.value = ""; closeResults(); q.focus(); });
  $("#fav-open").addEventListener("click", openFavs);
  for (const dlg of document.querySelectorAll("dialog")) {
    dlg.addEventListener("click", (ev) => { if (ev.target === dlg) dlg.close(); });
  }
  for (const d of DECADES) $("#f-decade").append(el("option", { value: String(d), text: `${d}s` }));
  await loadGenres();
  await refresh();
}

start();
