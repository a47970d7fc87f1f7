// Provisor console: small enhancements; every page works without this script.
(function () {
  "use strict";
  // A code's countdown: data-countdown holds the seconds left when the page was made.
  document.querySelectorAll("[data-countdown]").forEach(function (el) {
    var end = Date.now() + Number(el.getAttribute("data-countdown")) * 1000;
    var original = el.textContent;
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      if (left === 0) {
        el.textContent = "Expired: get a new code";
        el.closest(".code-card") && el.closest(".code-card").classList.add("expired");
        return;
      }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      var two = function (n) { return (n < 10 ? "0" : "") + n; };
      el.textContent = "Expires in " + (h > 0 ? h + ":" + two(m) : m) + ":" + two(s) + " · " + original.toLowerCase();
      setTimeout(tick, 1000);
    }
    tick();
  });
})();
// The template editor's live preview: the form is sent (CSRF token and all) to the preview
// address a moment after each change; the answer is a problem or what the phone receives.
(function () {
  "use strict";
  var form = document.querySelector("form.editor[data-preview]");
  if (!form) { return; }
  var problem = form.querySelector("[data-problem]");
  var output = form.querySelector("[data-output]");
  var warnings = form.querySelector("[data-warnings]");
  var idle = form.querySelector("[data-idle]");
  var timer = null, sent = 0;
  function show(answer) {
    if (idle) { idle.hidden = true; }
    warnings.textContent = "";
    problem.textContent = "";
    if (answer.problem) {
      var p = document.createElement("p");
      p.className = "alert";
      var where = document.createElement("strong");
      where.textContent = answer.problem.line ? "Line " + answer.problem.line + ", column " + answer.problem.column + ": " : "";
      p.appendChild(where);
      p.appendChild(document.createTextNode(answer.problem.message));
      problem.appendChild(p);
      problem.hidden = false;
      output.hidden = true;
      return;
    }
    problem.hidden = true;
    (answer.warnings || []).forEach(function (w) {
      var el = document.createElement("p");
      el.className = "warning";
      el.textContent = w;
      warnings.appendChild(el);
    });
    output.textContent = answer.body;
    output.hidden = false;
  }
  function refresh() {
    var mine = ++sent;
    var body = new URLSearchParams(new FormData(form));
    fetch(form.getAttribute("data-preview"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (answer) { if (mine === sent) { show(answer); } })
      .catch(function () {});
  }
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 500);
  });
})();
