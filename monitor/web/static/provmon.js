// provmon live pages: performance charts (hand-drawn SVG) and the live refresh of the tables.
// Served by provmon itself; no other origin, no inline script. The tables are server-rendered
// and work without this file: it only re-fetches the page to refresh them, and draws charts.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
    "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d",
  ];
  const body = document.body;
  const state = { window: "24h", pct: "p50", busy: false, charts: false };

  function svg(name, attrs, parent) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  function niceStep(max, ticks) {
    const raw = max / ticks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }

  function fmtValue(v, unit) {
    if (v === null || v === undefined) return "–";
    if (unit === "ms") return v >= 10000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
    return v.toFixed(v >= 100 ? 0 : 1) + " tok/s";
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function fmtTime(t, long, seconds) {
    const d = new Date(t);
    let hm = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    if (seconds) hm += ":" + pad(d.getUTCSeconds());
    return long ? pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + hm : hm;
  }

  function drawChart(figure, doc, pct) {
    const plot = figure.querySelector(".plot");
    const unit = doc.unit === "ms" ? "ms" : "tps";
    const width = Math.max(320, plot.clientWidth || 640);
    const height = 220;
    const m = { left: 62, right: 14, top: 10, bottom: 26 };
    // the window, or from the first point when the data is younger than the window
    let first = Infinity;
    for (const s of doc.series) if (s.points.length) first = Math.min(first, Date.parse(s.points[0].t));
    const x1 = Date.parse(doc.end);
    const x0 = Math.max(Date.parse(doc.start), Math.min(first, x1 - 60000) - doc.bucket_s * 500);
    const long = x1 - x0 > 2 * 86400000;
    let ymax = 0;
    for (const s of doc.series) for (const p of s.points) if (p[pct] > ymax) ymax = p[pct];
    const root = svg("svg", {
      viewBox: "0 0 " + width + " " + height, width: width, height: height,
      role: "img", "aria-label": doc.label + " " + pct + " over " + doc.window,
    });
    const X = (t) => m.left + ((t - x0) / (x1 - x0)) * (width - m.left - m.right);
    if (ymax <= 0) {
      const t = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, root);
      t.textContent = "No ok probes in this window";
    } else {
      const step = niceStep(ymax, 4);
      const top = Math.ceil((ymax * 1.05) / step) * step;
      const Y = (v) => height - m.bottom - (v / top) * (height - m.top - m.bottom);
      for (let v = 0; v <= top + step / 2; v += step) {
        svg("line", { x1: m.left, x2: width - m.right, y1: Y(v), y2: Y(v), class: "grid" }, root);
        const label = svg("text", { x: m.left - 6, y: Y(v) + 4, "text-anchor": "end", class: "tick" }, root);
        label.textContent = fmtValue(v, unit);
      }
      for (let i = 0; i <= 4; i++) {
        const t = x0 + ((x1 - x0) * i) / 4;
        const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
        const label = svg("text", { x: X(t), y: height - 8, "text-anchor": anchor, class: "tick" }, root);
        label.textContent = fmtTime(t, long, x1 - x0 < 15 * 60000);
      }
      const gap = doc.bucket_s * 1000 * 2.5;
      doc.series.forEach((s, i) => {
        const colour = PALETTE[i % PALETTE.length];
        let d = "";
        let last = null;
        const g = svg("g", { class: "series" }, root);
        for (const p of s.points) {
          const v = p[pct];
          if (v === null || v === undefined) continue;
          const t = Date.parse(p.t) + (doc.bucket_s * 1000) / 2;
          d += (last === null || t - last > gap ? "M" : "L") + X(t).toFixed(1) + "," + Y(v).toFixed(1);
          last = t;
          const dot = svg("circle", { cx: X(t).toFixed(1), cy: Y(v).toFixed(1), r: 2.5, fill: colour }, g);
          svg("title", {}, dot).textContent =
            s.provider_name + " (" + s.route + ") " + fmtTime(Date.parse(p.t), true, doc.bucket_s < 60) +
            " UTC: " +
            pct + " " + fmtValue(v, unit) + ", n=" + p.n;
        }
        if (d) svg("path", { d: d, fill: "none", stroke: colour, "stroke-width": 1.8, class: "line" }, g);
      });
    }
    const legend = document.createElement("div");
    legend.className = "legend";
    doc.series.forEach((s, i) => {
      const item = document.createElement("span");
      const key = svg("svg", { width: 12, height: 12, class: "swatch" }, item);
      svg("rect", { width: 12, height: 12, rx: 2, fill: PALETTE[i % PALETTE.length] }, key);
      item.appendChild(document.createTextNode(s.provider_name + " (" + s.route + ")"));
      legend.appendChild(item);
    });
    plot.replaceChildren(root, legend);
    figure.dataset.drawn = String(doc.series.reduce((n, s) => n + s.points.length, 0));
  }

  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }

  async function refreshCharts() {
    const charts = document.getElementById("charts");
    if (!charts) return;
    const api = charts.dataset.api;
    const figures = Array.from(charts.querySelectorAll("figure.chart"));
    await Promise.all(figures.map(async (fig) => {
      const url = api + "/series?metric=" + encodeURIComponent(fig.dataset.metric) +
        "&window=" + encodeURIComponent(state.window);
      try {
        fig._doc = await getJSON(url);
        drawChart(fig, fig._doc.data, state.pct);
      } catch (err) {
        fig.querySelector(".plot").textContent = "Could not load the series (" + err.message + ").";
      }
    }));
  }

  function redraw() {
    for (const fig of document.querySelectorAll("figure.chart")) {
      if (fig._doc) drawChart(fig, fig._doc.data, state.pct);
    }
  }

  function setupControls() {
    const controls = document.getElementById("perf-controls");
    if (!controls) return;
    controls.hidden = false;
    controls.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      const kind = b.dataset.window ? "window" : "pct";
      for (const other of controls.querySelectorAll("button[data-" + kind + "]")) {
        other.setAttribute("aria-pressed", String(other === b));
      }
      if (kind === "window") {
        state.window = b.dataset.window;
        refreshCharts();
      } else {
        state.pct = b.dataset.pct;
        redraw();
      }
    });
  }

  async function refreshLive() {
    if (state.busy) return;
    state.busy = true;
    const updated = document.getElementById("updated");
    try {
      const resp = await fetch(location.pathname + location.search, {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" },
      });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const fresh = new DOMParser().parseFromString(await resp.text(), "text/html");
      for (const el of document.querySelectorAll("[data-live]")) {
        const next = fresh.getElementById(el.id);
        if (next) el.replaceChildren(...Array.from(next.childNodes, (n) => document.importNode(n, true)));
      }
      const stamp = fresh.getElementById("updated");
      if (stamp && updated) {
        updated.textContent = stamp.textContent;
        updated.classList.remove("stale");
      }
    } catch (err) {
      if (updated) {
        updated.textContent = "not refreshed: " + err.message;
        updated.classList.add("stale");
      }
    } finally {
      state.busy = false;
    }
  }

  function start() {
    const refreshS = Math.min(10, Math.max(1, Number(body.dataset.refreshS) || 5));
    if (body.dataset.page === "model") {
      const charts = document.getElementById("charts");
      if (charts && charts.dataset.window) state.window = charts.dataset.window;
      setupControls();
      refreshCharts();
      let ticks = 0;
      setInterval(() => {
        ticks += 1;
        const slow = state.window === "7d" || state.window === "30d";
        if (!slow || ticks % 6 === 0) refreshCharts();
      }, 10000);
    }
    if (document.querySelector("[data-live]")) setInterval(refreshLive, refreshS * 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
