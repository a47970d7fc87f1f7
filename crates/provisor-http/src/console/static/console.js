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
