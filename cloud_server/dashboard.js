// fedvst cloud dashboard: polls /state.json and /chart.svg (same origin, the page's token if any).
"use strict";
const token = new URLSearchParams(window.location.search).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};

function ago(unix, now) {
  if (!unix) return "-";
  const seconds = Math.max(0, Math.round(now - unix));
  return seconds < 120 ? seconds + " s ago" : Math.round(seconds / 60) + " min ago";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
}

function movement(round) {
  if (round.round === 0) return ["initial model", ""];
  if (round.moved_max === null || round.moved_max === undefined) return ["-", ""];
  if (round.moved_max === 0) return ["UNCHANGED", "unchanged"];
  return [round.moved_max.toExponential(2) + ", " + round.moved_rms.toExponential(2), ""];
}

function renderRounds(rounds) {
  const body = document.querySelector("#rounds tbody");
  body.replaceChildren();
  for (const round of rounds.slice(-10).reverse()) {
    const row = document.createElement("tr");
    row.dataset.round = String(round.round);
    cell(row, String(round.round));
    cell(row, typeof round.heldout_total === "number" ? round.heldout_total.toPrecision(6) : "-");
    const [moved, className] = movement(round);
    cell(row, moved, className);
    cell(row, Object.entries(round.edges || {}).map(([name, images]) => name + ": " + images).join(", ") || "-");
    body.appendChild(row);
  }
}

function render(state) {
  const federation = state.federation || {};
  const edges = federation.edges || [];
  const rounds = state.rounds || [];
  const counted = rounds.filter((r) => r.round > 0).length;
  document.getElementById("summary").textContent =
    (federation.state || "no report yet") + " · round " + (federation.round ?? "-") + " · " +
    counted + " rounds counted · best round " + (state.best_round ?? "-");
  document.getElementById("heldout").textContent = state.heldout ? "(" + state.heldout + ")" : "";
  document.getElementById("line").textContent = federation.line || "";
  renderRounds(rounds);
  const body = document.querySelector("#edges tbody");
  body.replaceChildren();
  for (const edge of edges) {
    const row = document.createElement("tr");
    row.dataset.node = edge.node;
    cell(row, edge.name || "?", "name");
    cell(row, String(edge.node));
    cell(row, edge.ready ? "yes" : "no", edge.ready ? "ready-yes" : "ready-no");
    cell(row, edge.trained === null || edge.trained === undefined
      ? String(edge.new_images ?? "-") + " new frames (no trainer)" : String(edge.trained));
    cell(row, edge.serving_round === null || edge.serving_round === undefined ? "-" : String(edge.serving_round));
    cell(row, ago(edge.last_seen, state.now));
    cell(row, edge.reason || "");
    body.appendChild(row);
  }
  const newest = state.newest;
  document.getElementById("newest").textContent = newest
    ? newest.name + " (round " + newest.round + ", sha256 " + newest.sha256.slice(0, 12) + "…, saved " +
      ago(newest.saved_unix, state.now) + ")"
    : "none yet";
  document.getElementById("updated").textContent = "Updated " + new Date(state.now * 1000).toLocaleTimeString() + ".";
  document.body.dataset.rounds = String(rounds.length);
}

async function refresh() {
  try {
    const [stateReply, chartReply] = await Promise.all([
      fetch("state.json", { headers, cache: "no-store" }),
      fetch("chart.svg", { headers, cache: "no-store" }),
    ]);
    if (!stateReply.ok) throw new Error(await stateReply.text());
    render(await stateReply.json());
    if (chartReply.ok) {
      const svg = new DOMParser().parseFromString(await chartReply.text(), "image/svg+xml").documentElement;
      document.getElementById("chart").replaceChildren(document.importNode(svg, true));
    }
    document.getElementById("error").textContent = "";
  } catch (error) {
    document.getElementById("error").textContent = "could not refresh: " + error.message;
  }
}

// the page arrives with its first state and chart inline: shown at once, before any request
const initial = document.getElementById("initial-state");
if (initial && initial.textContent.trim().startsWith("{")) render(JSON.parse(initial.textContent));
else refresh();
setInterval(refresh, 5000);
