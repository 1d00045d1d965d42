// Checks a procedure's run form (or the schedule form, which has the same
// parameter fields) before it is sent, with the server's own messages:
// each field carries its rules and messages (data-rules, made by
// procedure.Parameter.Rules, the code the server checks with). The server
// checks again; without this script the form still works.
(function () {
  "use strict";
  var form = document.getElementById("run-form") || document.getElementById("schedule-form");
  if (!form) { return; }

  // quote renders a value as Go's strconv.Quote does, so that messages
  // that name the value read the same as the server's.
  function quote(s) {
    var out = '"';
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      var ch = s.charAt(i);
      if (ch === '"' || ch === "\\") { out += "\\" + ch; continue; }
      var short = { 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r" }[c];
      if (short) { out += short; continue; }
      if (c < 0x20 || c === 0x7f) { out += "\\x" + (c < 16 ? "0" : "") + c.toString(16); continue; }
      if ((c >= 0x80 && c < 0xa0) || c === 0xad || c === 0x2028 || c === 0x2029 || c === 0xfeff) {
        out += "\\u" + ("000" + c.toString(16)).slice(-4);
        continue;
      }
      out += ch;
    }
    return out + '"';
  }

  function message(rules, name, value) {
    var m = rules.messages[name] || name;
    var i = m.lastIndexOf("%q");
    return i < 0 ? m : m.slice(0, i) + quote(value) + m.slice(i + 2);
  }

  function pattern(p) {
    try { return new RegExp("^(?:" + p + ")$", "u"); } catch (e) { /* fall through */ }
    try { return new RegExp("^(?:" + p + ")$"); } catch (e) { return null; } // the server still checks
  }

  // check returns the message for a field's value, or "".
  function check(el, rules) {
    if (rules.type === "multi-enum") {
      var n = el.querySelectorAll("input:checked").length;
      if (rules.min_length != null && n < rules.min_length) { return message(rules, "min_length"); }
      if (rules.max_length != null && n > rules.max_length) { return message(rules, "max_length"); }
      return "";
    }
    if (rules.type === "bool") { return ""; }
    var v = el.value;
    if (v === "") { return rules.required ? message(rules, "required") : ""; }
    if (rules.type === "int") {
      var t = v.trim();
      if (!/^[+-]?[0-9]+$/.test(t)) { return message(rules, "integer", v); }
      var i = BigInt(t);
      if (i < -(2n ** 63n) || i >= 2n ** 63n) { return message(rules, "integer", v); }
      if (rules.min != null && i < BigInt(rules.min)) { return message(rules, "min"); }
      if (rules.max != null && i > BigInt(rules.max)) { return message(rules, "max"); }
      return "";
    }
    if (rules.type === "enum") {
      return rules.values.indexOf(v) < 0 ? message(rules, "enum", v) : "";
    }
    var len = Array.from(v).length;
    if (rules.min_length != null && len < rules.min_length) { return message(rules, "min_length"); }
    if (rules.max_length != null && len > rules.max_length) { return message(rules, "max_length"); }
    if (rules.pattern) {
      var re = pattern(rules.pattern);
      if (re && !re.test(v)) { return message(rules, "pattern", v); }
    }
    return "";
  }

  var fields = Array.prototype.slice.call(form.querySelectorAll("[data-rules]"));
  function validate(el) {
    var rules = JSON.parse(el.getAttribute("data-rules"));
    var msg = check(el, rules);
    var out = document.getElementById(el.getAttribute("data-error"));
    if (out) { out.textContent = msg; }
    if (msg) { el.setAttribute("aria-invalid", "true"); } else { el.removeAttribute("aria-invalid"); }
    return msg === "";
  }
  // A flagged field is checked again at each keystroke, so that its
  // message is gone as soon as the value is right: were it checked only
  // when the field loses focus, the message would vanish while the Run
  // button is being pressed, the button would move, and the click would
  // be lost. An unflagged field is checked when it changes, not while it
  // is being typed.
  fields.forEach(function (el) {
    el.addEventListener("change", function () { validate(el); });
    el.addEventListener("input", function () {
      if (el.getAttribute("aria-invalid") === "true") { validate(el); }
    });
  });
  form.addEventListener("submit", function (e) {
    var first = null;
    fields.forEach(function (el) {
      if (!validate(el) && !first) { first = el; }
    });
    var summary = document.getElementById("form-error");
    if (first) {
      e.preventDefault();
      summary.textContent = summary.getAttribute("data-message");
      summary.hidden = false;
      (first.querySelector("input") || first).focus();
    }
  });
})();
