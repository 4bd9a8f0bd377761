// Forewarn support console: SLA countdowns, the live queue, j/k keys.
// The pages work without it; it only keeps them fresh.
(function () {
  "use strict";

  function human(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + sec + "s";
    return sec + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-due]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-due")) - now;
      el.textContent = left < 0 ? "overdue " + human(left) : "due in " + human(left);
      el.classList.toggle("overdue", left < 0);
    });
  }

  function live(table) {
    var url = table.getAttribute("data-live");
    var body = document.getElementById("queue-rows");
    var counts = document.getElementById("counts");
    var status = document.getElementById("live-status");
    var known = ids();
    function ids() {
      return Array.prototype.map.call(body.querySelectorAll("tr[data-id]"), function (tr) { return tr.getAttribute("data-id"); });
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (resp) {
        if (resp.status === 401) { window.location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search)); return null; }
        return resp.ok ? resp.json() : null;
      }).then(function (data) {
        if (!data) return;
        if (counts.innerHTML.trim() !== data.counts.trim()) counts.innerHTML = data.counts;
        if (body.innerHTML.trim() === data.rows.trim()) return;
        var focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("tr[data-id]") : null;
        var focusID = focused ? focused.getAttribute("data-id") : null;
        body.innerHTML = data.rows; // server-rendered, escaped by html/template
        var fresh = 0;
        body.querySelectorAll("tr[data-id]").forEach(function (tr) {
          if (known.indexOf(tr.getAttribute("data-id")) < 0) { tr.classList.add("new"); fresh++; }
        });
        known = ids();
        if (fresh > 0) status.textContent = fresh + (fresh === 1 ? " new ticket" : " new tickets") + " in the queue";
        if (focusID) {
          var again = body.querySelector('tr[data-id="' + focusID + '"] a.row-link');
          if (again) again.focus();
        }
        tick();
      }).catch(function () { /* offline for a moment: try again at the next poll */ });
    }
    setInterval(poll, 3000);
  }

  function keys() {
    document.addEventListener("keydown", function (e) {
      var t = e.target;
      if (e.altKey || e.ctrlKey || e.metaKey || (t && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(t.tagName))) return;
      var links = Array.prototype.slice.call(document.querySelectorAll("#queue a.row-link"));
      if (e.key === "/") {
        var first = document.querySelector(".filters input, .filters select");
        if (first) { e.preventDefault(); first.focus(); }
        return;
      }
      if (!links.length || (e.key !== "j" && e.key !== "k")) return;
      var i = links.indexOf(document.activeElement);
      i = e.key === "j" ? Math.min(links.length - 1, i + 1) : Math.max(0, i - 1);
      e.preventDefault();
      links[i].focus();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    var table = document.getElementById("queue");
    if (table && table.getAttribute("data-live")) live(table);
    keys();
  });
})();
