// Live output and status of a run page, over Server-Sent Events. The page
// works without this script: it then shows the output as of loading.
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || !window.EventSource) { return; }
  var id = root.getAttribute("data-run");
  var out = document.getElementById("output");
  var status = document.getElementById("status");
  var filter = document.getElementById("node-filter");
  var last = root.getAttribute("data-last-seq") || "0";
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
  void last;
})();
