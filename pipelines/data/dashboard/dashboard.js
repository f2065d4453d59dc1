// govstream operators' dashboard: polls the worker every 2 s and draws SVG line charts.
// Opened as /dashboard#analyst (or at a path ending in /analyst) it is the analysts' page
// instead: the 三率 per department and the current hotspots, from summary.json's "analyst".
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

  function analystView() {
    return location.hash === "#analyst" || /\/analyst\/?$/.test(location.pathname);
  }

  function pct(v) {
    return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %";
  }

  function cell(row, text, attrs) {
    const td = document.createElement("td");
    td.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") td.className = v; else td.setAttribute(k, v === null ? "" : String(v));
    }
    row.appendChild(td);
    return td;
  }

  function rateCells(row, k) {
    cell(row, String(k.received), {class: "n", "data-received": k.received});
    cell(row, pct(k.response_rate), {class: "n", "data-response-rate": k.response_rate,
      title: k.responded + " / " + k.response_judged});
    cell(row, pct(k.resolution_rate), {class: "n", "data-resolution-rate": k.resolution_rate,
      title: k.solved + " / " + k.rated_orders});
    cell(row, pct(k.satisfaction_rate), {class: "n", "data-satisfaction-rate": k.satisfaction_rate,
      title: k.satisfied + " / " + k.rated_orders});
    cell(row, String(k.rated_orders), {class: "n", "data-rated": k.rated_orders});
    cell(row, String(k.problem_orders), {class: "n", "data-problem": k.problem_orders});
  }

  function setRate(id, value) {
    const node = document.getElementById(id);
    node.textContent = pct(value);
    node.setAttribute("data-value", value === null || value === undefined ? "" : String(value));
  }

  function drawAnalyst(a) {
    const body = document.querySelector("#departments tbody");
    body.textContent = "";
    for (const k of a.departments) {
      const row = document.createElement("tr");
      row.setAttribute("data-department", k.department);
      cell(row, k.department);
      rateCells(row, k);
      body.appendChild(row);
    }
    const total = document.createElement("tr");
    total.className = "total";
    total.setAttribute("data-department", "");
    cell(total, "合计 all departments");
    rateCells(total, a.totals);
    body.appendChild(total);
    setValue("kpi-received", a.totals.received);
    setRate("kpi-response", a.totals.response_rate);
    setRate("kpi-resolution", a.totals.resolution_rate);
    setRate("kpi-satisfaction", a.totals.satisfaction_rate);
    setValue("kpi-problem", a.totals.problem_orders);
    setValue("kpi-hotspots", a.hotspots.length);
    const hot = document.querySelector("#hotspots tbody");
    hot.textContent = "";
    for (const h of a.hotspots) {
      const row = document.createElement("tr");
      row.setAttribute("data-grid", h.grid_id);
      row.setAttribute("data-category", h.category_code);
      cell(row, h.grid_id);
      cell(row, [h.city, h.county, h.township, h.village].join(" "));
      cell(row, h.category_code + " " + h.category_major + "/" + h.category_minor);
      cell(row, h.window_start + " – " + h.window_end);
      cell(row, String(h.reports), {class: "n hot", "data-reports": h.reports});
      cell(row, String(h.baseline_reports), {class: "n", "data-baseline": h.baseline_reports,
        title: h.baseline_windows + " windows of " + h.window_days + " days"});
      cell(row, h.ratio === null ? "new" : h.ratio.toFixed(1), {class: "n"});
      hot.appendChild(row);
    }
    if (!a.hotspots.length) {
      const row = document.createElement("tr");
      cell(row, "no hotspot in the window ending " + a.today, {class: "empty", colspan: 7});
      hot.appendChild(row);
    }
    document.getElementById("hotspot-window").textContent =
      "the window ending " + a.today + " against the baseline windows before it";
  }

  async function refresh() {
    const status = document.getElementById("status");
    const problems = [];
    const analyst = analystView();
    document.body.setAttribute("data-view", analyst ? "analyst" : "operators");
    if (analyst) {
      try {
        const s = await getJson("/dashboard/summary.json");
        if (s.analyst.error) throw new Error(s.analyst.error);
        drawAnalyst(s.analyst);
      } catch (err) { problems.push(String(err.message || err)); }
    } else try {
      const h = await getJson("/dashboard/history.json");
      draw("chart-lag", "legend-lag", h.lag);
      draw("chart-throughput", "legend-throughput", h.throughput);
      draw("chart-dead", "legend-dead", h.dead_letters);
      draw("chart-latency", "legend-latency", h.insert_latency_ms);
      setValue("tot-in", h.totals.events_in);
      setValue("tot-dead", h.totals.dead_letters);
    } catch (err) { problems.push(String(err.message || err)); }
    if (!analyst) try {
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
  window.addEventListener("hashchange", refresh);
})();
