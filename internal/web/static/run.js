// Live output, status and per-node progress of a run page, over
// Server-Sent Events. The page works without this script: it then shows
// everything as of loading.
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || !window.EventSource) { return; }
  var id = root.getAttribute("data-run");
  var out = document.getElementById("output");
  var status = document.getElementById("status");
  var filter = document.getElementById("node-filter");
  var chunks = [];
  function render() {
    var node = filter ? filter.value : "";
    var text = "";
    for (var i = 0; i < chunks.length; i++) {
      if (!node || chunks[i].node === node) { text += chunks[i].data; }
    }
    out.textContent = text;
    out.scrollTop = out.scrollHeight;
  }
  if (filter) { filter.addEventListener("change", render); }
  out.textContent = "";
  var es = new EventSource("/api/v1/runs/" + encodeURIComponent(id) + "/output");
  es.addEventListener("output", function (e) { chunks.push(JSON.parse(e.data)); render(); });
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
      ["", "status", "exit", "node-error"].forEach(function (c) {
        var td = document.createElement("td");
        if (c === "status") { td.appendChild(document.createElement("span")); } else if (c) { td.className = c; }
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
  });
})();
