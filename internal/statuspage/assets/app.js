// lookout status page: follows /status/events and keeps one tile per source.
"use strict";
(function () {
  const PAGE = 24;      // tiles per page
  const COMPACT = 16;   // more sources than this: smaller tiles
  const tiles = new Map(); // id -> {el, thumb}
  let page = 0;
  let last = null;
  const $ = (id) => document.getElementById(id);

  function text(el, s) { if (el.textContent !== s) el.textContent = s; }
  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
    return (n / (1 << 20)).toFixed(1) + " MiB";
  }
  function header(h) {
    text($("h-model"), h.model || "?");
    text($("h-batch"), String(h.max_batch));
    text($("h-workers"), String(h.workers));
    text($("h-instance"), h.instance || "?");
    if (!h.kafka) { text($("h-spool"), "no kafka"); text($("h-broker"), "no kafka"); return; }
    text($("h-spool"), h.kafka.spool_records + " records, " + bytes(h.kafka.spool_bytes) +
      (h.kafka.oldest_unsent_s > 0 ? ", oldest " + h.kafka.oldest_unsent_s.toFixed(0) + " s" : ""));
    text($("h-broker"), h.kafka.broker_up ? "up" : "down" + (h.kafka.last_error ? ": " + h.kafka.last_error : ""));
  }
  function stateOf(s) {
    if (s.state === "running" && s.gated > 0) return ["gated", "running, unchanged (" + s.gated + " gated)"];
    return [s.state, s.state];
  }
  function tile(s) {
    let t = tiles.get(s.id);
    if (!t) {
      const el = $("tile").content.firstElementChild.cloneNode(true);
      el.dataset.source = s.id;
      el.setAttribute("aria-label", "source " + s.id);
      t = { el: el, thumb: 0 };
      tiles.set(s.id, t);
    }
    const el = t.el;
    text(el.querySelector(".id"), s.id);
    const [cls, label] = stateOf(s);
    const st = el.querySelector(".state");
    st.className = "state " + cls;
    text(st, label);
    const cap = el.querySelector(".caption");
    const rec = s.record;
    text(cap, rec ? rec.caption : "waiting for the first caption…");
    cap.dataset.pts = rec ? String(rec.pts_ms) : "";
    cap.dataset.id = rec ? rec.id || "" : "";
    el.dataset.state = s.state;
    const ul = el.querySelector(".attrs");
    // Attributes, then Florence-2's objects and OCR text, as chips.
    const chips = [];
    if (rec && rec.attributes) Object.keys(rec.attributes).sort().forEach((k) => chips.push(k + ": " + rec.attributes[k].value));
    if (rec && rec.objects) rec.objects.forEach((o) => chips.push(o.label));
    if (rec && rec.ocr) chips.push("text: " + rec.ocr);
    const want = chips.join("\n");
    if (ul.dataset.v !== want) {
      ul.dataset.v = want;
      ul.replaceChildren(...chips.map((c) => {
        const li = document.createElement("li");
        li.textContent = c;
        return li;
      }));
    }
    let stats = s.fps.toFixed(2) + " fps";
    if (rec) stats += " · latency " + Math.round(s.latency_ms) + " ms · pts " + (rec.pts_ms / 1000).toFixed(1) + " s";
    stats += " · " + s.delivered + " captions";
    text(el.querySelector(".stats"), stats);
    const err = el.querySelector(".error");
    err.hidden = !s.last_error;
    text(err, s.last_error ? "last error: " + s.last_error : "");
    text(el.querySelector(".owner"), "owner " + s.instance);
    if (s.thumb && s.thumb !== t.thumb) {
      t.thumb = s.thumb;
      // Load off-screen, then swap: the tile never flickers to an empty image.
      const img = el.querySelector("img");
      const next = new Image();
      next.onload = () => {
        img.src = next.src;
        img.alt = "latest captioned frame of " + s.id;
      };
      next.src = "/status/thumbnail/" + encodeURIComponent(s.id) + ".jpg?v=" + s.thumb;
    }
    return el;
  }
  function render() {
    if (!last) return;
    header(last.header);
    const srcs = last.sources || [];
    const seen = new Set(srcs.map((s) => s.id));
    for (const id of tiles.keys()) if (!seen.has(id)) { tiles.get(id).el.remove(); tiles.delete(id); }
    const pages = Math.max(1, Math.ceil(srcs.length / PAGE));
    page = Math.min(page, pages - 1);
    $("pager").hidden = pages < 2;
    text($("page-label"), "page " + (page + 1) + " of " + pages + " (" + srcs.length + " sources)");
    $("empty").hidden = srcs.length > 0;
    const box = $("tiles");
    box.classList.toggle("compact", srcs.length > COMPACT);
    const shown = srcs.slice(page * PAGE, (page + 1) * PAGE).map(tile);
    const want = new Set(shown);
    for (const el of Array.from(box.children)) if (!want.has(el)) el.remove();
    shown.forEach((el, i) => { if (box.children[i] !== el) box.insertBefore(el, box.children[i] || null); });
  }
  function connect() {
    const es = new EventSource("/status/events");
    es.onopen = () => text($("conn"), "live");
    es.onmessage = (e) => {
      last = JSON.parse(e.data);
      render();
      text($("conn"), "live · " + new Date(last.time).toLocaleTimeString());
    };
    es.onerror = () => text($("conn"), "disconnected, retrying…");
  }
  document.addEventListener("DOMContentLoaded", () => {
    $("prev").onclick = () => { page = Math.max(0, page - 1); render(); };
    $("next").onclick = () => { page += 1; render(); };
    connect();
  });
})();
