// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Countdowns: the server rendered the remaining time against its own (possibly simulated) clock;
  // keep ticking from there, measuring only the time elapsed in this browser since load.
  var body = document.body;
  var serverNow = Date.parse(body.getAttribute("data-server-now") || "");
  var loadedAt = Date.now();

  function fmt(seconds) {
    var left = seconds >= 0, s = Math.abs(Math.floor(seconds));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var text = d ? d + " d " + h + " h" : (h ? h + " h " + m + " min" : m + " min");
    return left ? text + " left" : "overdue by " + text;
  }

  function tick() {
    if (isNaN(serverNow)) { return; }
    var now = serverNow + (Date.now() - loadedAt);
    var nodes = document.querySelectorAll("time.countdown[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var due = Date.parse(nodes[i].getAttribute("datetime"));
      if (isNaN(due)) { continue; }
      var secs = (due - now) / 1000;
      nodes[i].textContent = fmt(secs);
      nodes[i].classList.toggle("overdue", secs < 0);
    }
  }
  tick();
  setInterval(tick, 30000);

  // Forms marked data-autorefresh: changing a field marked data-refresh re-submits the form's
  // "refresh" button (e.g. the checklist step), so the server re-renders the fields for the new choice.
  var forms = document.querySelectorAll("form[data-autorefresh]");
  for (var j = 0; j < forms.length; j++) {
    (function (form) {
      var button = form.querySelector("[data-refresh-button]");
      if (!button) { return; }
      form.addEventListener("change", function (ev) {
        if (ev.target && ev.target.hasAttribute("data-refresh")) {
          if (form.requestSubmit) { form.requestSubmit(button); } else { button.click(); }
        }
      });
    })(forms[j]);
  }
})();
