// govstream operators' dashboard: polls the worker every 2 s and draws SVG line charts.
// No external scripts: everything here is plain DOM and SVG.
"use strict";
(function () {
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = ["#79b8ff", "#56d364", "#f0b429", "#ff7b72", "#d2a8ff", "#39c5cf",
                   "#ffa657", "#a5d6ff", "#7ee787", "#f778ba", "#e3b341", "#8b949e"];
  const W = 600, H = 220, L = 48, R = 8, T = 10, B = 22;

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(v) {
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  // series: {name: [[t, v], ...]}
  function draw(svgId, legendId, series) {
    const svg = document.getElementById(svgId);
    const legend = document.getElementById(legendId);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    legend.textContent = "";
    const names = Object.keys(series).filter((n) => series[n].length > 0);
    let points = 0, tMin = Infinity, tMax = -Infinity, vMax = 0;
    for (const n of names) for (const [t, v] of series[n]) {
      tMin = Math.min(tMin, t); tMax = Math.max(tMax, t); vMax = Math.max(vMax, v);
    }
    if (!names.length) {
      svg.appendChild(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"}, "no data yet"));
      svg.setAttribute("data-points", "0");
      svg.setAttribute("data-max", "0");
      return;
    }
    if (tMax === tMin) tMin = tMax - 1;
    const top = vMax > 0 ? vMax * 1.1 : 1;
    const x = (t) => L + (W - L - R) * (t - tMin) / (tMax - tMin);
    const y = (v) => H - B - (H - T - B) * v / top;
    for (const f of [0, 0.5, 1]) {
      svg.appendChild(el("line", {x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: "axis"}));
      svg.appendChild(el("text", {x: L - 4, y: y(top * f) + 4, "text-anchor": "end", class: "tick"}, fmt(top * f)));
    }
    const span = Math.round(tMax - tMin);
    svg.appendChild(el("text", {x: L, y: H - 6, class: "tick"}, "−" + span + " s"));
    svg.appendChild(el("text", {x: W - R, y: H - 6, "text-anchor": "end", class: "tick"}, "now"));
    names.forEach((n, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const data = series[n];
      const pts = data.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
      svg.appendChild(el("polyline", {points: pts, stroke: colour, "data-series": n}));
      const [lt, lv] = data[data.length - 1];
      svg.appendChild(el("circle", {cx: x(lt), cy: y(lv), r: 3, fill: colour}));
      points += data.length;
      const item = document.createElement("li");
      const swatch = document.createElement("i");
      swatch.style.background = colour;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(n + ": " + fmt(lv)));
      legend.appendChild(item);
    });
    svg.setAttribute("data-points", String(points));
    svg.setAttribute("data-max", String(vMax));
  }

  function setValue(id, value) {
    const node = document.getElementById(id);
    node.textContent = value === undefined ? "–" : fmt(value);
    node.setAttribute("data-value", value === undefined ? "" : String(value));
  }

  async function getJson(path) {
    const answer = await fetch(path, {cache: "no-store"});
    const body = await answer.json();
    if (!answer.ok) throw new Error(path + ": " + (body.error || answer.status));
    return body;
  }

  async function refresh() {
    const status = document.getElementById("status");
    const problems = [];
    try {
      const h = await getJson("/dashboard/history.json");
      draw("chart-lag", "legend-lag", h.lag);
      draw("chart-throughput", "legend-throughput", h.throughput);
      draw("chart-dead", "legend-dead", h.dead_letters);
      draw("chart-latency", "legend-latency", h.insert_latency_ms);
      setValue("tot-in", h.totals.events_in);
      setValue("tot-dead", h.totals.dead_letters);
    } catch (err) { problems.push(String(err.message || err)); }
    try {
      const s = await getJson("/dashboard/summary.json");
      setValue("wo-total", s.total); setValue("wo-open", s.open);
      setValue("wo-overdue", s.overdue); setValue("wo-closed", s.closed);
    } catch (err) { problems.push(String(err.message || err)); }
    status.className = problems.length ? "status error" : "status";
    status.textContent = problems.length ? problems.join(" · ")
      : "updated " + new Date().toLocaleTimeString();
    document.body.setAttribute("data-refreshes",
      String(Number(document.body.getAttribute("data-refreshes") || 0) + 1));
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();
