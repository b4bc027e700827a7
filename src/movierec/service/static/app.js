// movierec page: plain ES module, no framework, no build step.
// Every piece of data is rendered with textContent / attributes, never innerHTML.

const $ = (sel) => document.querySelector(sel);
// image URLs: the server's image_base (/api/health) + a TMDB size + the image's path
const IMAGE_PATH = /^\/[\w.-]+$/;
function imageUrl(size, path) {
  return `${state.imageBase}/${size}${path}`;
}

const state = {
  session: { liked: [], disliked: [], liked_tags: [], disliked_tags: [], filters: {}, favourites: [] },
  genres: [],
  recVersion: 0,
  recSeq: 0,
  offline: false,
  standin: null, // the model training to replace the stand-in now serving, if any
  imageBase: "https://image.tmdb.org/t/p", // replaced by the server's (/api/health)
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
        const q = $("#q").value;
        if (q.trim()) searchNow(q); // what was typed while the server was away
      } catch (_) { /* still down */ }
    }, 3000);
  }
}

function notify(msg) {
  $("#rec-status").textContent = msg;
}

// ------------------------------------------------------------------ round-trip log
// One entry per gesture that asks for new recommendations (like, dislike, remove,
// reorder, filter), timed by the page itself: from the event handler's entry
// (performance.now()) to the first frame drawn after the new recommendations are in
// the DOM. Parts: the mutation request (which brings the recommendations back with
// it: `fetchMs` stays null unless they had to be asked for separately), the server's
// own `elapsed_ms` for the recommendations, the DOM update, and the wait for the frame.
// window.__movierecTimings keeps the last 100 entries; the browser test logs them.
const timings = [];
window.__movierecTimings = timings;
let timingId = 0;
const pendingTimings = new Set();

function beginTiming(gesture, ev) {
  const now = performance.now();
  const t = {
    id: ++timingId, gesture, start: now, status: "pending",
    // how long the event waited before its handler ran (event.timeStamp shares performance.now()'s clock)
    inputDelayMs: ev && ev.timeStamp > 0 && ev.timeStamp <= now ? now - ev.timeStamp : null,
    mutationMs: null, requestedAt: null, fetchMs: null, serverMs: null, domMs: null, frameMs: null, totalMs: null,
  };
  timings.push(t);
  if (timings.length > 100) timings.shift();
  pendingTimings.add(t);
  return t;
}

function dropTiming(t, why) {
  if (!t || !pendingTimings.has(t)) return;
  pendingTimings.delete(t);
  t.status = why;
}

// Runs `fn` once the frame after the current DOM changes has been produced: rAF runs
// before that frame's style/layout/paint, the message task right after it.
function afterNextFrame(fn) {
  if (document.hidden) { setTimeout(fn, 0); return; }
  requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => fn();
    ch.port2.postMessage(null);
  });
}

// Finish every pending gesture whose recommendations request went out no later than
// `fetchStart`: the recommendations rendered now answer it (a newer gesture supersedes
// an older one's request, and the visitor waits for the newest).
function finishTimings(fetchStart, fetchMs, serverMs, domMs) {
  const done = [...pendingTimings].filter((t) => t.requestedAt !== null && t.requestedAt <= fetchStart);
  if (!done.length) return;
  const drawnFrom = performance.now();
  afterNextFrame(() => {
    const end = performance.now();
    for (const t of done) {
      if (!pendingTimings.delete(t)) continue;
      Object.assign(t, { fetchMs, serverMs, domMs, frameMs: end - drawnFrom, totalMs: end - t.start, status: "done" });
    }
  });
}

// ------------------------------------------------------------------ keyed lists
// Bring `ul`'s children to `items` without rebuilding what is already shown: a node
// whose key (e.g. the movie id) and signature (what `build` drew from the item) are
// unchanged is kept and patched with `update`, so an unchanged card keeps its DOM, its
// poster image and its focus. Two phases, so several lists can be updated together:
// reconcile() builds new nodes off-document and removes the stale ones; the function it
// returns puts the nodes in order, moving as few as it can. Removing or moving the
// focused element makes Chrome lay the page out on the spot, so removals come before
// any insertion (the layout is still clean then) and moves use moveBefore(), which
// keeps focus where the browser has it.
let focusLost = null;

function reconcile(ul, items, keyOf, sigOf, build, update = null) {
  const old = new Map();
  for (const node of ul.children) if (node.__key !== undefined) old.set(node.__key, node);
  const nodes = items.map((it) => {
    const key = keyOf(it);
    const sig = sigOf(it);
    let node = old.get(key);
    if (node && node.__sig === sig) {
      old.delete(key);
      if (update) update(node, it);
      return node;
    }
    node = build(it);
    node.__key = key;
    node.__sig = sig;
    return node;
  });
  const keep = new Set(nodes);
  const active = document.activeElement;
  for (const node of [...ul.children]) {
    if (keep.has(node)) continue;
    if (active && node.contains(active)) {
      // remember where focus was, to hand it to the item now in that place (restoreFocus)
      focusLost = { ul, index: [...ul.children].indexOf(node), cls: active.getAttribute("class") };
    }
    node.remove();
  }
  return () => {
    let ref = ul.firstChild;
    for (const node of nodes) {
      if (node === ref) ref = ref.nextSibling;
      else if (node.parentNode === ul && ul.moveBefore) ul.moveBefore(node, ref);
      else ul.insertBefore(node, ref);
    }
  };
}

// After a list lost the focused item (a disliked card, a liked tag), focus the same
// control of the item that took its place, so keyboard users stay where they were.
function restoreFocus() {
  const lost = focusLost;
  focusLost = null;
  if (!lost || (document.activeElement && document.activeElement !== document.body)) return;
  const items = lost.ul.children;
  const item = items[Math.min(lost.index, items.length - 1)];
  if (!item) return;
  const candidates = [item, ...item.querySelectorAll("button")];
  const same = lost.cls ? candidates.find((n) => n.getAttribute("class") === lost.cls) : null;
  const target = same || (item.tabIndex >= 0 ? item : item.querySelector("button"));
  if (target) target.focus({ preventScroll: true });
}

function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
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
  if (m.poster_path && IMAGE_PATH.test(m.poster_path)) {
    const size = cls.includes("big") ? "w342" : "w185";
    const img = el("img", { src: imageUrl(size, m.poster_path), alt: "", loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => img.remove());
    img.addEventListener("load", () => box.classList.add("has-img"));
    box.append(img);
  }
  return box;
}

function fmtRating(m) {
  // the shrunk mean (few ratings pull toward the average), with the count it rests on
  const r = m.rating ?? m.mean_rating;
  if (r === null || r === undefined) return "no ratings";
  const n = m.rating_count === 1 ? "1 rating" : `${m.rating_count} ratings`;
  return `★ ${Number(r).toFixed(1)} (${n})`;
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
// A card is built once per movie and list; what changes with the session (the reason,
// liked / disliked / favourite state) is patched in place by updateCard.
function movieActions(m) {
  const name = movieName(m);
  const box = el("div", { class: "actions" },
    el("button", {
      type: "button", class: "btn icon like", "aria-label": `Like ${name}`,
      title: "Like", onclick: (ev) => sendItem("movie", m.movie_id, "like", beginTiming("like movie", ev)),
    }, icon("up")),
    el("button", {
      type: "button", class: "btn icon dislike", "aria-label": `Dislike ${name}`,
      title: "Dislike", onclick: (ev) => sendItem("movie", m.movie_id, "dislike", beginTiming("dislike movie", ev)),
    }, icon("down")),
    el("button", {
      type: "button", class: "btn icon save", title: "Save to favourites", onclick: () => toggleFav(m.movie_id),
    }));
  updateActions(box, m);
  return box;
}

function updateActions(box, m) {
  const name = movieName(m);
  const fb = feedbackOf(m.movie_id);
  const fav = isFav(m.movie_id);
  const [like, dislike, save] = box.children;
  setAttr(like, "aria-pressed", fb === "like" ? "true" : "false");
  setAttr(dislike, "aria-pressed", fb === "dislike" ? "true" : "false");
  setAttr(save, "aria-pressed", fav ? "true" : "false");
  setAttr(save, "aria-label", `${fav ? "Remove" : "Save"} ${name} ${fav ? "from" : "to"} favourites`);
  setText(save, fav ? "★" : "☆");
}

// A card names three genres: those the genre filter asked for first, so that a card never
// looks as if it ignored the filter (The Lion King is a Drama too, but not its first genre).
function shownGenres(m) {
  const chosen = new Set(state.session.filters?.genres || []);
  const gs = m.genres || [];
  return [...gs.filter((g) => chosen.has(g)), ...gs.filter((g) => !chosen.has(g))].slice(0, 3);
}

function movieCard(m) {
  const name = movieName(m);
  const li = el("li", { class: "card", dataset: { movieId: String(m.movie_id) } });
  // the poster opens the movie too, for a pointer; the keyboard reaches the same through the title
  const open = el("button", { type: "button", class: "card-open", tabindex: "-1", "aria-label": `Open ${name}`, onclick: () => openMovie(m.movie_id) },
    poster(m));
  const body = el("div", { class: "card-body" },
    el("h3", { class: "card-title" }, el("button", { type: "button", class: "linkish", text: name, onclick: () => openMovie(m.movie_id) })),
    el("p", { class: "meta", text: [m.year || "", shownGenres(m).join(" · ")].filter(Boolean).join(" — ") }),
    el("p", { class: "meta rating", text: fmtRating(m) }),
    ...(m.overview ? [el("p", { class: "blurb", text: m.overview })] : []),
    movieActions(m));
  li.append(open, body);
  updateCard(li, m);
  return li;
}

function updateCard(li, m) {
  const body = li.lastChild;
  const actions = body.lastChild;
  let reason = actions.previousSibling.classList.contains("reason") ? actions.previousSibling : null;
  if (m.reason) {
    if (!reason) body.insertBefore((reason = el("p", { class: "reason" })), actions);
    setText(reason, m.reason);
  } else if (reason) {
    reason.remove();
  }
  updateActions(actions, m);
}

function tagChip(name, { held = null } = {}) {
  const li = el("li", { class: "chip tag", dataset: { tag: name } });
  li.append(el("span", { class: "chip-label", text: name }));
  if (held === null) {
    li.append(
      el("button", { type: "button", class: "btn icon tiny like", "aria-label": `Like tag ${name}`, title: "Like tag", text: "+", onclick: (ev) => sendItem("tag", name, "like", beginTiming("like tag", ev)) }),
      el("button", { type: "button", class: "btn icon tiny dislike", "aria-label": `Dislike tag ${name}`, title: "Dislike tag", text: "−", onclick: (ev) => sendItem("tag", name, "dislike", beginTiming("dislike tag", ev)) }));
  } else {
    li.append(el("button", { type: "button", class: "btn icon tiny", "aria-label": `Remove tag ${name}`, title: "Remove", text: "×", onclick: (ev) => removeItem("tag", name, beginTiming("remove tag", ev)) }));
  }
  return li;
}

// ------------------------------------------------------------------ session bar
function sortableChip(m, feedback) {
  const name = movieName(m);
  const li = el("li", { class: "chip movie", draggable: "true", tabindex: "0", dataset: { value: String(m.movie_id) } });
  li.append(
    el("button", { type: "button", class: "btn icon tiny move", "aria-label": `Move ${name} left (less important)`, text: "◀", onclick: (ev) => move(feedback, m.movie_id, -1, false, beginTiming("button reorder", ev)) }),
    el("span", { class: "chip-label", text: name }),
    el("button", { type: "button", class: "btn icon tiny move", "aria-label": `Move ${name} right (more important)`, text: "▶", onclick: (ev) => move(feedback, m.movie_id, +1, false, beginTiming("button reorder", ev)) }),
    el("button", { type: "button", class: "btn icon tiny", "aria-label": `Remove ${name}`, text: "×", onclick: (ev) => removeItem("movie", m.movie_id, beginTiming("remove movie", ev)) }));
  li.addEventListener("keydown", (ev) => {
    if (ev.target !== li) return;
    if (ev.altKey && (ev.key === "ArrowLeft" || ev.key === "ArrowRight")) {
      ev.preventDefault();
      move(feedback, m.movie_id, ev.key === "ArrowLeft" ? -1 : 1, true, beginTiming("keyboard reorder", ev));
    } else if (ev.key === "Delete" || ev.key === "Backspace") {
      ev.preventDefault();
      removeItem("movie", m.movie_id, beginTiming("remove movie", ev));
    }
  });
  li.addEventListener("click", (ev) => { if (ev.target === li || ev.target.classList.contains("chip-label")) openMovie(m.movie_id); });
  return li;
}

function renderSession() {
  const s = state.session;
  const places = [];
  for (const [sel, list, fb] of [["#liked", s.liked, "like"], ["#disliked", s.disliked, "dislike"]]) {
    const ul = $(sel);
    const label = (li, m) => setAttr(li, "aria-label", `${movieName(m)}, ${list.indexOf(m) + 1} of ${list.length}`);
    // liked movies are in order of importance (drag, keys or ◀ ▶); dislikes have no order
    const build = (m) => { const li = fb === "like" ? sortableChip(m, fb) : dislikedChip(m); label(li, m); return li; };
    places.push(reconcile(ul, list, (m) => `m${m.movie_id}`, (m) => `${fb}|${JSON.stringify(m)}`, build, label));
    places.push(() => { if (!list.length) ul.append(el("li", { class: "empty", text: fb === "like" ? "Like a movie with the thumbs-up button" : "Nothing disliked" })); });
  }
  for (const [sel, list, fb] of [["#liked-tags", s.liked_tags, "like"], ["#disliked-tags", s.disliked_tags, "dislike"]]) {
    const ul = $(sel);
    places.push(reconcile(ul, list, (t) => `t${t}`, (t) => t, (t) => tagChip(t, { held: fb })));
    places.push(() => { if (!list.length) ul.append(el("li", { class: "empty", text: fb === "like" ? "Like a tag with +" : "Nothing disliked" })); });
  }
  for (const place of places) place();
  setText($("#fav-count"), String(s.favourites.length));
  setText($("#top-genres"), topGenres(s.liked));
  renderFilters();
}

// "Mostly Sci-Fi · Action · Thriller": the genres of the liked movies, most frequent first
function topGenres(liked) {
  const counts = new Map();
  for (const m of liked) for (const g of m.genres || []) counts.set(g, (counts.get(g) || 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 3).map(([g]) => g);
  return top.length ? `Mostly ${top.join(" · ")}` : "";
}

function dislikedChip(m) {
  const name = movieName(m);
  const li = el("li", { class: "chip movie", tabindex: "0", dataset: { value: String(m.movie_id) } });
  li.append(
    el("span", { class: "chip-label", text: name }),
    el("button", { type: "button", class: "btn icon tiny", "aria-label": `Remove ${name}`, text: "×", onclick: (ev) => removeItem("movie", m.movie_id, beginTiming("remove movie", ev)) }));
  li.addEventListener("keydown", (ev) => {
    if (ev.target === li && (ev.key === "Delete" || ev.key === "Backspace")) {
      ev.preventDefault();
      removeItem("movie", m.movie_id, beginTiming("remove movie", ev));
    }
  });
  li.addEventListener("click", (ev) => { if (ev.target === li || ev.target.classList.contains("chip-label")) openMovie(m.movie_id); });
  return li;
}

// drag and drop over the sortable lists: the chip moves while it is dragged, and the
// new order is posted the moment it is dropped (dragend only catches a drop elsewhere).
const LONG_PRESS_MS = 300;

function setupDrag(ul) {
  let dragged = null;
  let before = "";
  const orderOf = () => [...ul.querySelectorAll("li.chip")].map((li) => Number(li.dataset.value));
  const commit = (ev) => {
    if (!dragged) return;
    const t = beginTiming("drag reorder", ev);
    dragged.classList.remove("dragging");
    dragged = null;
    const ordered = orderOf();
    if (ordered.join(",") === before) { dropTiming(t, "unchanged"); return; }
    sendOrder(ul.dataset.kind, ul.dataset.feedback, ordered, t);
  };
  ul.addEventListener("dragstart", (ev) => {
    const li = ev.target.closest("li.chip");
    if (!li) return;
    dragged = li;
    before = orderOf().join(",");
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
    const ref = after ? over.nextSibling : over;
    if (ref !== dragged && dragged.nextSibling !== ref) over.parentNode.insertBefore(dragged, ref);
  });
  ul.addEventListener("drop", (ev) => {
    ev.preventDefault();
    commit(ev);
  });
  ul.addEventListener("dragend", (ev) => commit(ev));

  // Touch: HTML drag and drop does not work with a finger. A press held still for
  // LONG_PRESS_MS picks the chip up (a quick swipe still scrolls the strip), the chip follows
  // the finger among its neighbours, and lifting the finger drops it.
  let timer = null;
  let origin = null;
  const moveTo = (x, y) => {
    const over = document.elementFromPoint(x, y)?.closest("li.chip");
    if (!over || over === dragged || over.parentNode !== ul) return;
    const r = over.getBoundingClientRect();
    const ref = x > r.left + r.width / 2 ? over.nextSibling : over;
    if (ref !== dragged && dragged.nextSibling !== ref) ul.insertBefore(dragged, ref);
  };
  ul.addEventListener("touchstart", (ev) => {
    const li = ev.target.closest("li.chip");
    if (!li || ev.target.closest("button") || ev.touches.length !== 1) return;
    origin = { x: ev.touches[0].clientX, y: ev.touches[0].clientY };
    clearTimeout(timer);
    timer = setTimeout(() => {
      dragged = li;
      before = orderOf().join(",");
      li.classList.add("dragging");
      if (navigator.vibrate) navigator.vibrate(10);
    }, LONG_PRESS_MS);
  }, { passive: true });
  ul.addEventListener("touchmove", (ev) => {
    const t = ev.touches[0];
    if (!dragged) {
      if (origin && Math.hypot(t.clientX - origin.x, t.clientY - origin.y) > 8) clearTimeout(timer); // a swipe: scroll
      return;
    }
    ev.preventDefault(); // the strip stays put while a chip is carried
    moveTo(t.clientX, t.clientY);
  }, { passive: false });
  const lift = (ev) => {
    clearTimeout(timer);
    origin = null;
    if (dragged) commit(ev);
  };
  ul.addEventListener("touchend", lift);
  ul.addEventListener("touchcancel", lift);
}

async function move(feedback, id, delta, keepFocus = false, timing = null) {
  const list = (feedback === "like" ? state.session.liked : state.session.disliked).map((m) => m.movie_id);
  const i = list.indexOf(id);
  const j = i + delta;
  if (i < 0 || j < 0 || j >= list.length) { dropTiming(timing, "no-op"); return; }
  [list[i], list[j]] = [list[j], list[i]];
  const sel = feedback === "like" ? "#liked" : "#disliked";
  await sendOrder("movie", feedback, list, timing, keepFocus ? () => {
    const li = document.querySelector(`${sel} li[data-value="${id}"]`);
    if (li) li.focus();
  } : null);
}

// ------------------------------------------------------------------ actions
// A change to the session, in one round trip: the answer holds the new session and the
// recommendations it gives (`?${RECS}`). Redraw the session bar (and search results),
// then the recommendations, unless a newer request is on its way. A busy recommender
// answers the change without them: then ask for them on their own (that retries).
const RECS = "n=24&n_tags=12";

async function mutate(method, url, body, timing, { search = false, after = null } = {}) {
  const seq = ++state.recSeq;
  $("#recs").setAttribute("aria-busy", "true");
  const t0 = performance.now();
  if (timing) timing.requestedAt = t0;
  let session;
  try {
    session = await api(method, `${url}?${RECS}`, body);
  } catch (err) {
    dropTiming(timing, "failed");
    if (seq === state.recSeq) $("#recs").setAttribute("aria-busy", "false");
    if (err instanceof ApiError) notify(`Could not do that: ${err.message}`);
    return false;
  }
  const t1 = performance.now();
  if (timing) timing.mutationMs = t1 - timing.start;
  const { recommendations, ...rest } = session;
  state.session = rest;
  renderSession();
  if (search) rerenderSearch();
  if (after) after();
  if (!recommendations) await loadRecs();
  else if (seq === state.recSeq) renderRecs(recommendations, t0, null);
  return true;
}

function sendItem(kind, value, feedback, timing = null) {
  return mutate("POST", "/api/session/items", { kind, value, feedback }, timing, { search: true });
}

function removeItem(kind, value, timing = null) {
  return mutate("DELETE", "/api/session/items", { kind, value }, timing, { search: true });
}

function sendOrder(kind, feedback, ordered, timing = null, after = null) {
  return mutate("PUT", "/api/session/order", { kind, feedback, ordered }, timing, { after });
}

async function toggleFav(id) {
  const was = isFav(id);
  let favs;
  try {
    favs = await api(was ? "DELETE" : "POST", "/api/favourites", { movie_id: id });
  } catch (err) {
    if (err instanceof ApiError) notify(`Could not do that: ${err.message}`);
    return;
  }
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
// Cards are keyed by movie id: a card whose movie, reason, feedback and favourite
// state are unchanged keeps its DOM node; only new or changed cards are built.
function cardSig(m) {
  const { reason: _r, score: _s, ...shown } = m; // what updateCard patches is not part of the signature
  return JSON.stringify([shown, shownGenres(m)]);
}

function renderCards(ul, movies) {
  return reconcile(ul, movies, (m) => `m${m.movie_id}`, cardSig, movieCard, updateCard);
}

function renderTagChips(ul, tags) {
  return reconcile(ul, tags, (t) => `t${t}`, (t) => t, (t) => tagChip(t));
}

async function loadRecs() {
  const seq = ++state.recSeq;
  const ul = $("#recs");
  ul.setAttribute("aria-busy", "true");
  const t0 = performance.now();
  let data;
  try {
    data = await api("GET", `/api/recommendations?${RECS}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 503) {
      notify("The recommender is busy, retrying…");
      setTimeout(loadRecs, 1000);
    } else {
      for (const t of pendingTimings) if (t.requestedAt !== null && t.requestedAt <= t0) dropTiming(t, "failed");
    }
    return;
  }
  if (seq !== state.recSeq) return; // a newer request is on its way
  renderRecs(data, t0, performance.now() - t0);
}

// Draw recommendations that answer a request sent at `t0` (`fetchMs`: how long a separate
// recommendations request took; null when they came with the change itself).
function renderRecs(data, t0, fetchMs) {
  const t1 = performance.now();
  const ul = $("#recs");
  const tags = $("#suggested-tags");
  const placeCards = renderCards(ul, data.movies);
  const placeTags = renderTagChips(tags, data.tags.map((t) => t.tag));
  placeCards();
  placeTags();
  if (!data.movies.length) ul.append(el("li", { class: "empty wide", text: "No movie matches these filters. Try loosening them." }));
  if (!data.tags.length) tags.append(el("li", { class: "empty", text: "Like a movie to get tag suggestions" }));
  ul.setAttribute("aria-busy", "false");
  afterNextFrame(restoreFocus);
  const ms = Math.round(performance.now() - t0);
  notify(data.fallback ? `Popular picks — like something to personalise (${ms} ms)` : `Updated in ${ms} ms`);
  state.recVersion += 1;
  document.body.dataset.recVersion = String(state.recVersion);
  document.body.dataset.recMs = String(ms);
  finishTimings(t0, fetchMs, data.elapsed_ms ?? null, performance.now() - t1);
}

// ------------------------------------------------------------------ search
let searchSeq = 0;
let searchBusy = false;
let searchNext = null;
let lastResults = null;

function rerenderSearch() {
  if (lastResults) renderResults(lastResults);
}

function renderResults({ movies, tags }) {
  $("#results").hidden = false;
  const held = new Set([...state.session.liked_tags, ...state.session.disliked_tags]);
  const placeMovies = renderCards($("#result-movies"), movies);
  const placeTags = renderTagChips($("#result-tags"), tags.filter((t) => !held.has(t.tag)).map((t) => t.tag));
  placeMovies();
  placeTags();
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

// Type-ahead without a timer: a keystroke searches at once; while a search is in
// flight, later keystrokes only keep the newest text, searched the moment it returns.
async function searchNow(q) {
  if (searchBusy) {
    searchNext = q;
    return;
  }
  searchBusy = true;
  try {
    await search(q);
  } finally {
    searchBusy = false;
    if (searchNext !== null) {
      const next = searchNext;
      searchNext = null;
      searchNow(next);
    }
  }
}

function closeResults() {
  searchSeq += 1; // an answer still on its way must not reopen the results
  searchNext = null;
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
  if (document.activeElement !== $("#f-text")) $("#f-text").value = f.text || "";
}

// On a first start the server answers with a stand-in (popular movies) while the real
// model trains in the background; say so, and look again until it has been swapped in.
const STANDIN_POLL_MS = 10000;
let standinTimer = null;

function noteModel(h) {
  const name = h.model_standin_for || null;
  const note = $("#standin");
  const was = state.standin;
  state.standin = name;
  note.hidden = !name;
  if (name) note.textContent = `Personalising soon: the ${name} model is still training, so these are popular movies. The list updates by itself when it is ready.`;
  if (was && !name) refresh(); // the trained model is in: new recommendations
  if (name && !standinTimer) {
    standinTimer = setTimeout(async () => {
      standinTimer = null;
      try { noteModel(await api("GET", "/api/health")); } catch (_) { /* banner shows; the retry looks again */ }
    }, STANDIN_POLL_MS);
  }
}

async function loadGenres() {
  try {
    const h = await api("GET", "/api/health");
    state.genres = h.genres || [];
    if (typeof h.image_base === "string" && /^https?:\/\/[^\s"'<>]+$/.test(h.image_base)) state.imageBase = h.image_base;
    noteModel(h);
  } catch (_) { return; /* banner shows; the retry loads them */ }
  const fs = $("#f-genres");
  fs.replaceChildren(el("legend", { class: "sr-only", text: "Genres (any of)" }));
  for (const g of state.genres) {
    fs.append(el("label", { class: "check" }, el("input", { type: "checkbox", value: g }), document.createTextNode(g)));
  }
}

async function sendFilters(ev) {
  const timing = beginTiming("filters", ev);
  const num = (v) => (v === "" ? null : Number(v));
  let yMin = num($("#f-from").value);
  let yMax = num($("#f-to").value);
  if (yMin !== null && yMax !== null && yMin > yMax) [yMin, yMax] = [yMax, yMin];
  const body = {
    min_rating: num($("#f-rating").value),
    year_min: yMin,
    year_max: yMax,
    genres: [...document.querySelectorAll("#f-genres input:checked")].map((b) => b.value),
    text: $("#f-text").value.trim() || null, // the taste in words, kept with the filters
  };
  await mutate("PUT", "/api/session/filters", body, timing);
}

function setupFilters() {
  $("#f-decade").addEventListener("change", (ev) => {
    const d = $("#f-decade").value;
    $("#f-from").value = d ? d : "";
    $("#f-to").value = d ? String(Number(d) + 9) : "";
    sendFilters(ev);
  });
  $("#f-rating").addEventListener("change", sendFilters);
  $("#f-from").addEventListener("change", sendFilters);
  $("#f-to").addEventListener("change", sendFilters);
  $("#f-genres").addEventListener("change", sendFilters);
  $("#filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); sendFilters(ev); });
  $("#text-form").addEventListener("submit", (ev) => { ev.preventDefault(); sendFilters(ev); });
  $("#f-clear").addEventListener("click", (ev) => {
    $("#f-rating").value = "";
    $("#f-decade").value = "";
    $("#f-from").value = "";
    $("#f-to").value = "";
    for (const b of document.querySelectorAll("#f-genres input")) b.checked = false;
    sendFilters(ev);
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
  // stills, and the trailer embedded only when the visitor asks (youtube-nocookie, no autoplay)
  $("#mv-stills").replaceChildren(...(m.stills || []).filter((p) => IMAGE_PATH.test(p)).map((p) =>
    el("li", {}, el("img", { src: imageUrl("w300", p), alt: `Still from ${movieName(m)}`, loading: "lazy", decoding: "async" }))));
  const trailer = $("#mv-trailer");
  trailer.replaceChildren();
  if (m.trailer_youtube_key && /^[\w-]{6,20}$/.test(m.trailer_youtube_key)) {
    trailer.append(el("button", { type: "button", class: "btn", text: "▶ Play the trailer here", onclick: () => {
      trailer.replaceChildren(el("iframe", {
        src: `https://www.youtube-nocookie.com/embed/${m.trailer_youtube_key}`,
        title: `Trailer of ${movieName(m)}`, allow: "encrypted-media; picture-in-picture; fullscreen", referrerpolicy: "strict-origin-when-cross-origin" }));
    } }));
  }
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

// ------------------------------------------------------------------ help me choose
// Questions chosen by the server from the model's ranking for the session now; each answer
// becomes likes, dislikes or a filter (the taste panel shows them), and the list below
// updates with it. Up to ASK_MAX questions, or until the visitor is done or nothing is left.
const ASK_MAX = 5;
const ask = { avoid: [], count: 0, undo: null };

function recIds() {
  return [...document.querySelectorAll("#recs li.card")].map((li) => li.dataset.movieId);
}

function snapshot() {
  const s = state.session;
  return {
    liked: s.liked.map((m) => m.movie_id), disliked: s.disliked.map((m) => m.movie_id),
    liked_tags: [...s.liked_tags], disliked_tags: [...s.disliked_tags], filters: { ...(s.filters || {}) },
  };
}

async function askNext() {
  const panel = $("#ask");
  panel.hidden = false;
  $("#ask-open").setAttribute("aria-expanded", "true");
  if (ask.count >= ASK_MAX) return askDone(`That was ${ASK_MAX} questions: the list is yours.`);
  const params = ask.avoid.map((a) => `avoid=${encodeURIComponent(a)}`).join("&");
  let q;
  try {
    q = (await api("GET", `/api/session/question${params ? `?${params}` : ""}`)).question;
  } catch (err) {
    return askDone(err instanceof ApiError ? `Could not ask: ${err.message}` : "Could not ask.");
  }
  if (!q) return askDone("Nothing left worth asking: the list has settled.");
  ask.avoid.push(`${q.kind}:${q.values.join(",")}`);
  $("#ask-q").textContent = `${ask.count + 1}. ${q.prompt}`;
  const choices = q.options.map((o, i) => el("button", { type: "button", class: "btn ask-option", text: o.label, onclick: (ev) => answer(q, i, ev) }));
  choices.push(el("button", { type: "button", class: "btn small", text: "Neither", onclick: (ev) => answer(q, "neither", ev) }));
  choices.push(el("button", { type: "button", class: "btn small", text: "Skip", onclick: (ev) => answer(q, "skip", ev) }));
  $("#ask-options").replaceChildren(...choices);
  choices[0].focus();
}

async function answer(q, a, ev) {
  const before = recIds();
  const was = snapshot();
  for (const b of document.querySelectorAll("#ask-options button")) b.disabled = true;
  const ok = await mutate("POST", "/api/session/answer", { kind: q.kind, values: q.values, answer: a }, beginTiming("answer", ev));
  ask.count += 1;
  if (ok) {
    const now = recIds();
    const fresh = now.filter((id) => !before.includes(id)).length;
    $("#ask-note").textContent = a === "skip" ? "Skipped." : fresh ? `${fresh} new in the list.` : "The list kept its movies; the order may have moved.";
    ask.undo = a === "skip" ? null : was;
    $("#ask-undo").hidden = !ask.undo;
  }
  await askNext();
}

// Put the session back as it was before the last answer: remove what it added, restore the filters.
async function undoAnswer(ev) {
  const was = ask.undo;
  if (!was) return;
  ask.undo = null;
  $("#ask-undo").hidden = true;
  const now = snapshot();
  for (const [key, kind] of [["liked", "movie"], ["disliked", "movie"], ["liked_tags", "tag"], ["disliked_tags", "tag"]]) {
    for (const v of now[key]) if (!was[key].includes(v)) await mutate("DELETE", "/api/session/items", { kind, value: v }, null);
  }
  if (JSON.stringify(now.filters) !== JSON.stringify(was.filters)) {
    const f = was.filters;
    await mutate("PUT", "/api/session/filters", { min_rating: f.min_rating ?? null, year_min: f.year_min ?? null, year_max: f.year_max ?? null, genres: f.genres || [], text: f.text ?? null }, beginTiming("undo", ev));
  }
  $("#ask-note").textContent = "Undone.";
}

function askDone(message) {
  $("#ask-q").textContent = message;
  $("#ask-options").replaceChildren();
  ask.count = 0;
  ask.avoid = [];
}

function askClose() {
  $("#ask").hidden = true;
  $("#ask-open").setAttribute("aria-expanded", "false");
  ask.count = 0;
  ask.avoid = [];
  ask.undo = null;
  $("#ask-undo").hidden = true;
  $("#ask-note").textContent = "";
  $("#ask-open").focus();
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
  q.addEventListener("input", () => searchNow(q.value));
  q.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") searchNow(q.value);
    if (ev.key === "Escape") { q.value = ""; closeResults(); }
  });
  $("#results-close").addEventListener("click", () => { q.value = ""; closeResults(); q.focus(); });
  $("#fav-open").addEventListener("click", openFavs);
  $("#ask-open").addEventListener("click", () => { ask.count = 0; ask.avoid = []; askNext(); });
  $("#ask-close").addEventListener("click", askClose);
  $("#ask-undo").addEventListener("click", undoAnswer);
  for (const dlg of document.querySelectorAll("dialog")) {
    dlg.addEventListener("click", (ev) => { if (ev.target === dlg) dlg.close(); });
  }
  for (const d of DECADES) $("#f-decade").append(el("option", { value: String(d), text: `${d}s` }));
  await loadGenres();
  await refresh();
}

start();
