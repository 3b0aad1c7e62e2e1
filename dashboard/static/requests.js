// «Обращения»: tick each deadline's countdown from the server's "now", so the agent's own
// clock never matters; amber from the moment the server named, red once overdue.
(function () {
  "use strict";

  var root = document.getElementById("requests");
  if (!root) { return; }
  var offsetMs = Number(root.getAttribute("data-now-ms")) - Date.now();

  function left(ms) {
    var whole = Math.floor(Math.abs(ms) / 1000);
    var days = Math.floor(whole / 86400);
    var hours = Math.floor((whole % 86400) / 3600);
    var minutes = Math.floor((whole % 3600) / 60);
    var parts = days ? [days + " д"] : [];
    if (hours) { parts.push(hours + " ч"); }
    if (!days && (minutes || !hours)) { parts.push(minutes + " мин"); }
    var said = parts.join(" ");
    return ms >= 0 ? "осталось " + said : "просрочено на " + said;
  }

  function tick() {
    var now = Date.now() + offsetMs;
    var nodes = root.querySelectorAll("[data-due-ms]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var due = Number(node.getAttribute("data-due-ms"));
      var amber = Number(node.getAttribute("data-amber-ms"));
      var state = now > due ? "red" : (now >= amber ? "amber" : "ok");
      node.querySelector(".countdown-value").textContent = left(due - now);
      node.className = "countdown timer timer-" + state;
      node.setAttribute("data-state", state);
    }
  }

  tick();
  window.setInterval(tick, 1000);
})();
