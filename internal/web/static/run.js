// Live output, status and per-node progress of a run page, over
// Server-Sent Events, and the output's node filter and search. The page
// works without this script: it then shows everything as of loading.
//
// The page holds the end of the output as lines, each naming its node
// (data-node); the stream goes on after the last chunk the page holds
// (data-after), so output is never sent twice, and a long output is not
// held whole: beyond twice the page's share, the oldest lines are
// dropped (the download has them).
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root) { return; }
  var id = root.getAttribute("data-run");
  var out = document.getElementById("output");
  var status = document.getElementById("status");
  var filter = document.getElementById("node-filter");
  var search = document.getElementById("output-search");
  var count = document.getElementById("search-count");
  var limit = 2 * 256 * 1024; // characters kept in the page
  var held = 0;
  var open = {}; // node -> its line not ended yet
  var finalAtLoad = ["succeeded", "failed", "canceled", "timed_out", "denied", "expired"].indexOf(root.getAttribute("data-status")) >= 0;

  function textOf(line) { return line.querySelector(".text").textContent; }

  // shown applies the node filter and the search to a line.
  function shown(line) {
    var node = filter ? filter.value : "";
    var q = search ? search.value.toLowerCase() : "";
    var ok = (!node || line.getAttribute("data-node") === node) && (!q || textOf(line).toLowerCase().indexOf(q) >= 0);
    line.hidden = !ok;
    return ok;
  }
  function applyAll() {
    if (!out) { return; }
    var lines = out.querySelectorAll(".line");
    var n = 0;
    for (var i = 0; i < lines.length; i++) { if (shown(lines[i])) { n++; } }
    if (filter) { out.classList.toggle("one-node", filter.value !== ""); }
    if (count) { count.textContent = search && search.value ? n + (n === 1 ? " line matches" : " lines match") : ""; }
  }

  if (out) {
    var lines = out.querySelectorAll(".line");
    for (var i = 0; i < lines.length; i++) {
      held += textOf(lines[i]).length;
      if (lines[i].getAttribute("data-open")) { open[lines[i].getAttribute("data-node")] = lines[i]; }
    }
    if (filter) { filter.addEventListener("change", applyAll); }
    if (search) {
      document.getElementById("search-tools").hidden = false;
      search.addEventListener("input", applyAll);
    }
  }

  function newLine(c) {
    var line = document.createElement("span");
    line.className = "line" + (c.stream !== "stdout" ? " " + c.stream : "");
    line.setAttribute("data-node", c.node);
    var label = document.createElement("span");
    label.className = "node-label";
    label.textContent = "[" + c.node + "] ";
    var text = document.createElement("span");
    text.className = "text";
    line.appendChild(label);
    line.appendChild(text);
    out.appendChild(line);
    if (out.querySelector(".line[data-node]:not([data-node=\"" + CSS.escape(c.node) + "\"])")) { out.classList.add("labelled"); }
    return line;
  }

  // add puts a chunk into lines, as the server does (outputLines).
  function add(c) {
    var parts = c.data.split("\n");
    for (var i = 0; i < parts.length; i++) {
      var last = i === parts.length - 1;
      if (last && parts[i] === "") { break; }
      var line = open[c.node];
      if (i > 0 || !line) { line = newLine(c); }
      var text = line.querySelector(".text");
      text.textContent += parts[i];
      held += parts[i].length;
      if (last) { open[c.node] = line; } else { delete open[c.node]; }
      shown(line);
    }
    while (held > limit && out.firstChild) {
      var first = out.firstChild;
      held -= first.textContent.length;
      out.removeChild(first);
      document.getElementById("output-omitted").hidden = false;
    }
  }

  if (!window.EventSource || !out) { return; }
  var stick = true; // follow the end unless the reader scrolled up
  out.addEventListener("scroll", function () { stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4; });
  var es = new EventSource("/api/v1/runs/" + encodeURIComponent(id) + "/output?after=" + encodeURIComponent(out.getAttribute("data-after") || "0"));
  es.addEventListener("output", function (e) {
    add(JSON.parse(e.data));
    if (search && search.value) { applyAll(); }
    if (stick) { out.scrollTop = out.scrollHeight; }
  });
  es.addEventListener("status", function (e) {
    var s = JSON.parse(e.data).status;
    status.textContent = s;
    status.className = "status status-" + s;
    root.setAttribute("data-status", s);
  });
  es.addEventListener("approvals", function (e) {
    var a = JSON.parse(e.data);
    var cell = document.getElementById("approvals");
    if (!cell) { return; }
    cell.textContent = a.approvals.length + " of " + a.required + " needed";
    a.approvals.forEach(function (d) {
      cell.appendChild(document.createElement("br"));
      var verb = d.decision === "approve" ? "approved" : "denied";
      cell.appendChild(document.createTextNode(d.approver + " " + verb + (d.comment ? ": " + d.comment : "")));
    });
  });
  es.addEventListener("node", function (e) {
    var n = JSON.parse(e.data);
    var body = document.querySelector("#nodes tbody");
    if (!body) { return; }
    var row = null;
    var rows = body.querySelectorAll("tr[data-node]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-node") === n.node) { row = rows[i]; }
    }
    if (!row) { // a node the page did not list (the Airlock host itself)
      var empty = body.querySelector("tr:not([data-node])");
      if (empty) { body.removeChild(empty); }
      row = document.createElement("tr");
      row.setAttribute("data-node", n.node);
      [["Node", ""], ["Status", "status"], ["Exit code", "exit"], ["Error", "node-error"]].forEach(function (c) {
        var td = document.createElement("td");
        td.setAttribute("data-label", c[0]);
        if (c[1] === "status") { td.appendChild(document.createElement("span")); } else if (c[1]) { td.className = c[1]; }
        row.appendChild(td);
      });
      row.firstChild.textContent = n.node;
      body.appendChild(row);
    }
    var badge = row.querySelector("span");
    badge.textContent = n.status;
    badge.className = "status status-" + n.status;
    row.querySelector(".exit").textContent = n.exit_code === undefined ? "" : String(n.exit_code);
    row.querySelector(".node-error").textContent = n.error || "";
  });
  // refresh takes the run's times and steps from the page as it is now
  // (they are written when the run ends).
  function refresh() {
    fetch(location.pathname, { credentials: "same-origin" }).then(function (resp) { return resp.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      ["started", "ended", "duration", "steps-section"].forEach(function (sel) {
        var now = document.getElementById(sel);
        var fresh = doc.getElementById(sel);
        if (now && fresh) { now.replaceWith(fresh); }
      });
      root.setAttribute("data-refreshed", "1");
    }).catch(function () { /* the times stay as loaded */ });
  }
  es.addEventListener("end", function (e) {
    var r = JSON.parse(e.data);
    status.textContent = r.status;
    status.className = "status status-" + r.status;
    root.setAttribute("data-status", r.status);
    var reason = document.getElementById("reason");
    if (reason && r.error) { reason.textContent = r.error; }
    es.close();
    var actions = document.getElementById("actions");
    if (actions) { actions.hidden = true; }
    if (!finalAtLoad) { refresh(); }
  });
})();
