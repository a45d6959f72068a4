// The fleet page: one EventSource, a snapshot per event; every value is written as text (never as HTML).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const query = token ? "?token=" + encodeURIComponent(token) : "";
const $ = (id) => document.getElementById(id);

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined || text === "" ? "–" : String(text);
  if (cls) td.className = cls;
  return td;
}

function bar(row, progress) {
  const td = row.insertCell();
  if (progress === null || progress === undefined) { td.textContent = "–"; return; }
  const outer = document.createElement("span"), inner = document.createElement("i");
  outer.className = "bar"; inner.style.width = Math.round(100 * Math.max(0, Math.min(1, progress))) + "%";
  outer.appendChild(inner); td.appendChild(outer);
  td.appendChild(document.createTextNode(" " + Math.round(100 * progress) + "%"));
  td.dataset.progress = progress;
}

function fill(tableId, items, draw) {
  const body = document.createElement("tbody");
  for (const item of items) draw(body.insertRow(), item);
  const table = $(tableId);
  table.replaceChild(body, table.tBodies[0]);
}

function age(seconds) { return seconds === null || seconds === undefined ? "never" : seconds.toFixed(1) + " s ago"; }

function drawMap(robots) {
  const traces = [];
  for (const [presence, color] of [["online", "#2e7d32"], ["silent", "#ef6c00"], ["offline", "#c62828"]]) {
    const some = robots.filter((r) => r.presence === presence && r.x !== null && r.y !== null);
    traces.push({
      type: "scatter", mode: "markers+text", name: presence, x: some.map((r) => r.x), y: some.map((r) => r.y),
      text: some.map((r) => r.robot_id), textposition: "top center",
      customdata: some.map((r) => [r.kind, r.frame || "?", r.battery_percent === null ? "?" : r.battery_percent + "%",
                                   r.current_task_id || "idle"]),
      hovertemplate: "%{text} (%{customdata[0]})<br>x %{x:.2f}, y %{y:.2f} in %{customdata[1]}<br>" +
                     "battery %{customdata[2]} · %{customdata[3]}<extra></extra>",
      marker: { size: 12, color: color, line: { width: 1, color: "#fff" } },
    });
  }
  const layout = {
    margin: { l: 40, r: 10, t: 10, b: 30 }, showlegend: true, legend: { orientation: "h" },
    xaxis: { autorange: true, zeroline: false, title: { text: "x (m)" } },
    yaxis: { autorange: true, zeroline: false, scaleanchor: "x", scaleratio: 1, title: { text: "y (m)" } },
    uirevision: "fleet",
  };
  Plotly.react("map", traces, layout, { displaylogo: false, responsive: true, staticPlot: false });
}

function link(up) { return up ? "connected" : "down"; }

function drawGateways(gateways) {
  const note = $("gateway-note");
  note.textContent = gateways.rows.length ? "" : gateways.note || "none";
  note.hidden = gateways.rows.length > 0;
  $("gateways").hidden = gateways.rows.length === 0;
  fill("gateways", gateways.rows, (row, g) => {
    row.dataset.gateway = g.gateway_id; row.dataset.state = g.state; row.className = g.state;
    cell(row, g.gateway_id); cell(row, g.state, "state " + g.state).title =
      "stale: no health record for 3 × " + g.interval_s + " s";
    cell(row, age(g.last_heard_s)); cell(row, g.up_for_s.toFixed(0) + " s", "num");
    cell(row, link(g.mqtt_connected), g.mqtt_connected ? "up" : "down");
    cell(row, link(g.kafka_connected), g.kafka_connected ? "up" : "down");
    cell(row, g.records_up_per_s.toFixed(1), "num"); cell(row, g.records_up, "num");
    cell(row, g.commands_down_per_s.toFixed(1), "num"); cell(row, g.commands_down, "num");
    cell(row, g.duplicates, "num");
    const reasons = Object.entries(g.drops).map(([reason, n]) => reason + " " + n).join("; ");
    cell(row, reasons || "0");
    cell(row, "in flight " + g.inflight + ", held " + g.held + ", commands " + g.commands_pending +
      (g.backpressure ? " · backpressure" : ""));
  });
}

function render(doc) {
  $("fleet").textContent = doc.fleet;
  $("robot-count").textContent = doc.summary.robots;
  $("online-count").textContent = doc.summary.online;
  $("offline-after").textContent = doc.offline_after_s;
  const counts = $("task-counts");
  counts.replaceChildren();
  counts.appendChild(document.createTextNode("tasks "));
  for (const [state, n] of Object.entries(doc.summary.tasks)) {
    const span = document.createElement("span");
    span.className = "state"; span.dataset.state = state; span.dataset.count = n;
    span.textContent = state + " " + n;
    counts.appendChild(span);
  }
  const source = doc.source || {};
  $("source").textContent = (source.endpoint || "?") + (source.connected ? "" : " (not connected)") +
    " · " + (source.records || 0) + " records" +
    (source.last_record_age_s === null ? "" : ", last " + source.last_record_age_s.toFixed(1) + " s ago") +
    (source.last_error ? " · last error: " + source.last_error : "");
  $("frames").textContent = "frame " + ([...new Set(doc.robots.map((r) => r.frame).filter((f) => f))].join(", ") || "?");
  fill("robots", doc.robots, (row, r) => {
    row.dataset.robot = r.robot_id; row.className = r.presence;
    cell(row, r.robot_id); cell(row, r.kind);
    cell(row, r.presence, "presence " + r.presence).title = r.presence_reason || "";
    cell(row, age(r.last_seen_s)); cell(row, r.mode + (r.paused ? " · paused" : ""));
    cell(row, r.battery_percent === null ? null : r.battery_percent + "%" + (r.charging ? " ⚡" : ""), "num");
    cell(row, r.x === null ? null : "(" + r.x.toFixed(1) + ", " + r.y.toFixed(1) + ")");
    cell(row, r.current_task_id ? r.current_task_id + (r.task_state ? " · " + r.task_state : "") : null);
    bar(row, r.task_progress); cell(row, r.tasks, "num");
  });
  fill("tasks", doc.tasks, (row, t) => {
    row.dataset.task = t.task_id; row.dataset.state = t.state;
    cell(row, t.task_id); cell(row, t.kind); cell(row, t.state, "state " + t.state); cell(row, t.robot_id);
    bar(row, t.progress); cell(row, t.attempts, "num"); cell(row, t.history.join(" → ")); cell(row, t.reason);
  });
  $("stream-count").textContent = doc.streams.length < doc.stream_count
    ? "(busiest " + doc.streams.length + " of " + doc.stream_count + ")" : "";
  fill("streams", doc.streams, (row, s) => {
    row.dataset.robot = s.robot_id; row.dataset.stream = s.stream;
    cell(row, s.robot_id); cell(row, s.stream); cell(row, s.rate_hz.toFixed(1), "num"); cell(row, s.total, "num");
    cell(row, s.p99_ms, "num"); cell(row, age(s.last_s));
  });
  const drops = $("drops");
  drops.replaceChildren();
  const entries = Object.entries(doc.drops);
  for (const [reason, n] of entries.length ? entries : [["none", null]]) {
    const li = document.createElement("li");
    li.textContent = n === null ? reason : reason + ": " + n;
    if (n === null) li.className = "none"; else li.dataset.reason = reason;
    drops.appendChild(li);
  }
  drawGateways(doc.gateways || { note: "", rows: [] });
  const broker = $("broker");
  broker.replaceChildren();
  const facts = Object.entries(doc.broker || {});
  for (const [fact, value] of facts.length ? facts : [["nothing heard", null]]) {
    const li = document.createElement("li");
    li.textContent = value === null ? fact : fact + ": " + value;
    if (value === null) li.className = "none"; else li.dataset.fact = fact;
    broker.appendChild(li);
  }
  drawMap(doc.robots);
  const updated = $("updated");
  updated.textContent = new Date(doc.at_ns / 1e6).toLocaleTimeString();
  updated.dataset.version = String(Number(updated.dataset.version) + 1);
  updated.dataset.at = String(doc.at_ns);
}

const events = new EventSource("/events" + query);
events.addEventListener("fleet", (event) => {
  $("link").textContent = "live"; $("link").className = "up";
  render(JSON.parse(event.data));
});
events.onerror = () => { $("link").textContent = "reconnecting"; $("link").className = "down"; };
