// The live page: reads /api/... every few seconds and draws it; charts are plain SVG.
// Everything from the server is put in as text (textContent), never as markup.
"use strict";

const REFRESH_MS = 3000;
const SVG = "http://www.w3.org/2000/svg";
const state = { sort: "volume", order: "desc", csrf: null, admin: false };

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

const integer = (n) => Math.round(n).toLocaleString("en-US");
const decimal = (n) => (n >= 100 ? integer(n) : n.toFixed(n >= 10 ? 1 : 2));
const percent = (share) => `${(share * 100).toFixed(1)} %`;

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit ? n.toFixed(1) : integer(n)} ${units[unit]}`;
}

function when(unix) {
  if (unix === null || unix === undefined) return "never";
  return new Date(unix * 1000).toLocaleString("en-GB", { hour12: false });
}

function minutes(seconds) {
  return seconds >= 3600 && seconds % 3600 === 0 ? `${seconds / 3600} h` : `${Math.round(seconds / 60)} min`;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) throw new SignInNeeded();
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

class SignInNeeded extends Error {}

// ---- sections ----

function showSummary(summary) {
  const w = summary.window;
  const shadow = summary.mode === "shadow";
  for (const node of document.querySelectorAll(".window")) node.textContent = `(last ${minutes(w.seconds)})`;
  $("received").textContent = integer(w.received);
  $("kept").textContent = integer(w.kept);
  $("dropped").textContent = integer(w.dropped);
  $("kept-label").textContent = shadow ? "Records enforce would keep" : "Records kept";
  $("dropped-label").textContent = shadow ? "Records enforce would drop" : "Records dropped";
  const totals = summary.savings.totals;
  $("kept-byte-share").textContent = percent(totals.kept_byte_share);
  $("saved-day").textContent = bytes(totals.saved_bytes_per_day);
  $("saved-month").textContent = bytes(totals.saved_bytes_per_month);
  const money = totals.saved_money_per_month;
  $("money-card").hidden = money === null;
  if (money !== null) $("saved-money").textContent = `${money.toFixed(2)} ${summary.savings.currency}`;
  $("basis").textContent = shadow
    ? "Shadow mode: nothing is dropped yet; these are what enforce mode would keep and save."
    : "Enforce mode: realised figures, from what the receivers kept.";
  const services = summary.savings.services;
  $("services").classList.toggle("with-tenants", services.some((s) => s.tenant));
  $("services").querySelector("tbody").replaceChildren(
    ...services.map((s) => {
      const row = el("tr");
      row.dataset.service = s.service;
      row.append(
        el("td", s.tenant, "tenant-column"),
        el("td", s.service, "service"),
        el("td", decimal(s.records_per_second), "volume"),
        el("td", bytes(s.bytes_per_second), "bytes"),
        el("td", percent(s.byte_share), "share"),
        el("td", percent(s.kept_byte_share), "share"),
        el("td", bytes(s.saved_bytes_per_day), "bytes"),
      );
      return row;
    }),
  );
  const cycle = summary.last_cycle_unix ? `last analysis cycle ${when(summary.last_cycle_unix)}` : "no analysis cycle yet";
  $("status").textContent = `policy version ${summary.policy_version} (${summary.mode}, ${summary.generator || "none"}); ${cycle}`;
  $("status").dataset.version = summary.policy_version;
}

function showChart(series) {
  const chart = $("chart");
  chart.replaceChildren();
  const points = series.points;
  // Drawn at the element's own width, so the bars fill it and the text is not stretched.
  const width = Math.max(chart.clientWidth, 200), height = 160, top = 10;
  chart.setAttribute("viewBox", `0 0 ${width} ${height + top + 10}`);
  const most = Math.max(1, ...points.map((p) => p.received));
  const step = width / Math.max(points.length, 1);
  chart.append(svg("line", { x1: 0, y1: top + height, x2: width, y2: top + height, class: "axis" }));
  points.forEach((p, n) => {
    const keptHeight = (p.kept / most) * height;
    const droppedHeight = (p.dropped / most) * height;
    const x = n * step;
    const bar = Math.max(step - 1, 1);
    const kept = svg("rect", { x, width: bar, y: top + height - keptHeight, height: keptHeight, class: "kept" });
    const dropped = svg("rect", { x, width: bar, y: top + height - keptHeight - droppedHeight, height: droppedHeight, class: "dropped" });
    const title = svg("title", {});
    title.textContent = `${when(p.start_unix)}: ${integer(p.kept)} kept, ${integer(p.dropped)} dropped`;
    const group = svg("g", {});
    group.append(kept, dropped, title);
    chart.append(group);
  });
  const label = svg("text", { x: 4, y: top + 12, class: "scale" });
  label.textContent = `${integer(most)} records per ${series.bucket_s} s`;
  chart.append(label);
  $("chart-range").textContent = points.length ? `(${when(points[0].start_unix)} – now)` : "";
}

function sparkline(values) {
  const width = 120, height = 24;
  const line = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "sparkline" });
  if (!values) return line;
  const most = Math.max(1, ...values);
  const step = width / Math.max(values.length - 1, 1);
  const coordinates = values.map((v, n) => `${(n * step).toFixed(1)},${(height - 1 - (v / most) * (height - 2)).toFixed(1)}`);
  line.append(svg("polyline", { points: coordinates.join(" "), class: "spark" }));
  return line;
}

function showPatterns(document_) {
  const body = $("patterns").querySelector("tbody");
  const tenants = document_.patterns.some((p) => p.tenant);
  $("patterns").classList.toggle("with-tenants", tenants);
  body.replaceChildren(
    ...document_.patterns.map((p) => {
      const row = el("tr");
      row.dataset.patternId = p.pattern_id;
      const id = el("td", p.pattern_id, "pattern-id");
      id.title = p.template;
      const example = el("td", p.example, "example");
      example.title = p.template;
      const spark = el("td", null, "spark-cell");
      spark.append(sparkline(p.sparkline));
      const pin = el("td", null, "admin-only");
      const button = el("button", "Pin…", "pin-this");
      button.type = "button";
      button.addEventListener("click", () => {
        $("pin-pattern").value = p.pattern_id;
        $("pin-rate").value = p.rate;
        $("pin-rate").focus();
      });
      pin.append(button);
      row.append(
        id,
        el("td", p.tenant, "tenant-column"),
        el("td", p.service, "service"),
        el("td", p.reason, "reason"),
        el("td", p.rate.toFixed(3), "rate"),
        el("td", decimal(p.records_per_second), "volume"),
        el("td", bytes(p.bytes_per_second), "bytes"),
        el("td", p.window_records === null ? "–" : integer(p.window_records), "window-records"),
        spark,
        example,
        pin,
      );
      row.querySelector(".rate").dataset.value = p.rate;
      row.querySelector(".volume").dataset.value = p.records_per_second;
      row.querySelector(".bytes").dataset.value = p.bytes_per_second;
      row.querySelector(".window-records").dataset.value = p.window_records ?? "";
      return row;
    }),
  );
  // Marked from the answer, not from the last click: an older refresh may land after it.
  for (const button of document.querySelectorAll("button.sort")) {
    const active = button.dataset.sort === document_.sort;
    button.classList.toggle("active", active);
    button.dataset.order = active ? document_.order : "";
  }
  const shown = document_.patterns.length;
  $("patterns-total").textContent = shown < document_.total ? `${shown} of ${document_.total} patterns` : `${shown} patterns`;
}

function showPins(document_) {
  $("pins").replaceChildren(
    ...document_.pins.map((pin) => {
      const item = el("li", `${pin.pattern_id} at rate ${pin.rate} until ${when(pin.expires_unix)}${pin.note ? ` (${pin.note})` : ""}${pin.in_policy ? "" : " (not in the policy yet)"}`);
      item.dataset.patternId = pin.pattern_id;
      return item;
    }),
  );
  if (!document_.pins.length) $("pins").append(el("li", "No pins.", "none"));
}

function showAnomalies(document_) {
  $("anomalies").replaceChildren(
    ...document_.anomalies.map((a) => {
      const item = el("li", `${when(a.at_unix)} ${a.severity} ${a.kind} in ${a.service} ${a.pattern_id}: ${a.detail}`, a.severity);
      item.dataset.kind = a.kind;
      return item;
    }),
  );
  if (!document_.anomalies.length) $("anomalies").append(el("li", "No anomalies.", "none"));
}

function showHistory(document_) {
  $("history").replaceChildren(
    ...document_.versions.map((v) => {
      const item = el("li");
      item.dataset.version = v.version;
      item.append(el("strong", `v${v.version}`), el("span", ` ${when(v.created_unix)} ${v.generator} ${v.mode}: `), el("span", v.summary || "", "summary"));
      return item;
    }),
  );
}

// ---- the cycle ----

async function refresh() {
  try {
    const [summary, series, patterns, pins, anomalies, history] = await Promise.all([
      api("/api/summary"),
      api("/api/series"),
      api(`/api/patterns?sort=${state.sort}&order=${state.order}`),
      api("/api/pins"),
      api("/api/anomalies"),
      api("/api/history"),
    ]);
    showSummary(summary);
    showChart(series);
    showPatterns(patterns);
    showPins(pins);
    showAnomalies(anomalies);
    showHistory(history);
    document.body.dataset.refreshed = String(Date.now());
  } catch (error) {
    if (error instanceof SignInNeeded) return showSignIn();
    $("status").textContent = `cannot refresh: ${error.message}`;
  }
}

function showSignIn() {
  $("live").hidden = true;
  $("signout").hidden = true;
  $("signin-section").hidden = false;
  $("signin-refused").hidden = !new URLSearchParams(location.search).has("signin");
  $("status").textContent = "Signed out";
}

async function pin(event) {
  event.preventDefault();
  const body = {
    pattern_id: $("pin-pattern").value.trim(),
    rate: Number($("pin-rate").value),
    for_s: Number($("pin-minutes").value) * 60,
  };
  const note = $("pin-note").value.trim();
  if (note) body.note = note;
  try {
    const result = await api("/api/pin", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
      body: JSON.stringify(body),
    });
    $("pin-result").textContent = `${result.pattern_id} pinned at ${result.rate} until ${when(result.expires_unix)}: policy version ${result.policy_version}`;
    await refresh();
  } catch (error) {
    $("pin-result").textContent = `not pinned: ${error.message}`;
  }
}

async function start() {
  let session;
  try {
    session = await api("/api/session");
  } catch (error) {
    if (error instanceof SignInNeeded) return showSignIn();
    $("status").textContent = `cannot load: ${error.message}`;
    return;
  }
  state.csrf = session.csrf;
  state.admin = session.admin;
  document.body.classList.toggle("admin", session.admin);
  $("signout").hidden = !session.signed_in;
  $("signout-csrf").value = session.csrf || "";
  $("live").hidden = false;
  // Reading needs no sign-in here, but a token may give more: the admin token pins.
  $("signin-section").hidden = session.admin || !session.sign_in_available;
  $("signin-refused").hidden = !new URLSearchParams(location.search).has("signin");
  for (const button of document.querySelectorAll("button.sort")) {
    button.addEventListener("click", () => {
      const same = state.sort === button.dataset.sort;
      state.order = same && state.order === "desc" ? "asc" : "desc";
      state.sort = button.dataset.sort;
      refresh();
    });
  }
  $("pin-form").addEventListener("submit", pin);
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
