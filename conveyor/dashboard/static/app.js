// Conveyor dashboard: relative times, keyboard shortcuts, row navigation, small form helpers.
// No inline scripts (the pages' Content-Security-Policy forbids them); htmx does the live parts.
(function () {
  "use strict";

  function ago(date) {
    var seconds = (Date.now() - date.getTime()) / 1000, future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 5) return "just now";
    var units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var text = Math.floor(seconds / units[i][1]) + units[i][0];
        return future ? "in " + text : text + " ago";
      }
    }
    return "just now";
  }

  function duration(seconds) {
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
    if (m < 60) return m + "m " + (s < 10 ? "0" : "") + s + "s";
    var h = Math.floor(m / 60); m = m % 60;
    return h + "h " + (m < 10 ? "0" : "") + m + "m";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time.rel[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) el.textContent = ago(date);
    });
    (root || document).querySelectorAll("[data-since]").forEach(function (el) {
      var date = new Date(el.getAttribute("data-since"));
      if (!isNaN(date)) el.textContent = duration(Math.max(0, (Date.now() - date.getTime()) / 1000));
    });
  }

  // -- rows: click, j/k selection kept across live updates ------------------------------------
  var selected = null;

  function rows() {
    var table = document.querySelector("table[data-rows]") || document.querySelector("table.list");
    return table ? Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-href]")) : [];
  }

  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); });
    if (!row) return;
    row.classList.add("selected");
    selected = row.getAttribute("data-href");
    row.scrollIntoView({block: "nearest"});
  }

  function reselect() {
    if (!selected) return;
    var match = rows().filter(function (r) { return r.getAttribute("data-href") === selected; })[0];
    if (match) match.classList.add("selected");
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    // by the remembered row, not the class: a live update may have just replaced the rows
    var index = all.findIndex(function (r) { return r.getAttribute("data-href") === selected; });
    index = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[index]);
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var copy = target.closest("[data-copy]");
    if (copy) {
      if (navigator.clipboard) navigator.clipboard.writeText(copy.getAttribute("data-copy"));
      var before = copy.textContent; copy.textContent = "copied";
      setTimeout(function () { copy.textContent = before; }, 1200);
      return;
    }
    if (target.closest("[data-help]")) { document.getElementById("help").showModal(); return; }
    if (target.closest("[data-open-replay]")) {
      var details = document.querySelector("#replay details");
      if (details) { details.open = true; var area = details.querySelector("textarea"); if (area) area.focus(); }
      return;
    }
    var row = target.closest("tr[data-href]");
    if (row && !target.closest("a, button, input, select, textarea, summary, details, form")) {
      if (event.metaKey || event.ctrlKey) window.open(row.getAttribute("data-href"));
      else window.location = row.getAttribute("data-href");
    }
  });

  document.addEventListener("change", function (event) {
    var field = event.target.closest("[data-autosubmit]");
    if (field && field.form) field.form.requestSubmit();
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // -- keyboard ---------------------------------------------------------------------------------
  var pendingG = false, gTimer = null;

  document.addEventListener("keydown", function (event) {
    var target = event.target, typing = /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) || target.isContentEditable;
    if (typing) {
      if (event.key === "Escape") target.blur();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) { event.preventDefault(); target.form.requestSubmit(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (pendingG) {
      pendingG = false; clearTimeout(gTimer);
      var link = document.querySelector('[data-go="' + event.key + '"]');
      if (link) { event.preventDefault(); window.location = link.getAttribute("href"); }
      return;
    }
    switch (event.key) {
      case "g": pendingG = true; gTimer = setTimeout(function () { pendingG = false; }, 1500); break;
      case "/": var search = document.getElementById("search"); if (search) { event.preventDefault(); search.focus(); search.select(); } break;
      case "j": move(1); break;
      case "k": move(-1); break;
      case "Enter":
        if (selected) window.location = selected;  // also between a live swap and its reselect
        break;
      case "[": case "]":
        var page = document.querySelector('[data-page="' + (event.key === "[" ? "prev" : "next") + '"]');
        if (page) window.location = page.getAttribute("href");
        break;
      case "?": document.getElementById("help").showModal(); break;
    }
  });

  // -- trace: fold a row and the rows under it; the choice outlives the page's live updates ----
  var folded = {};  // span id -> true (folded) or false (unfolded), where someone chose

  function applyFolds(root) {
    (root || document).querySelectorAll("[data-waterfall]").forEach(function (table) {
      var hideDeeperThan = null;
      table.querySelectorAll(".wf-row[data-span]").forEach(function (row) {
        var depth = Number(row.getAttribute("data-depth"));
        if (hideDeeperThan !== null && depth <= hideDeeperThan) hideDeeperThan = null;
        row.classList.toggle("wf-hidden", hideDeeperThan !== null);
        var toggle = row.querySelector("[data-wf-toggle]");
        if (!toggle) return;
        var id = row.getAttribute("data-span");
        var isFolded = id in folded ? folded[id] : row.hasAttribute("data-collapsed");
        toggle.setAttribute("aria-expanded", isFolded ? "false" : "true");
        if (isFolded && hideDeeperThan === null) hideDeeperThan = depth;
      });
    });
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-wf-toggle]");
    if (!toggle) return;
    var row = toggle.closest(".wf-row");
    folded[row.getAttribute("data-span")] = toggle.getAttribute("aria-expanded") === "true";
    applyFolds();
  });

  // -- live parts -------------------------------------------------------------------------------
  document.addEventListener("htmx:afterSwap", reselect);
  document.addEventListener("htmx:afterSettle", function (event) { refreshTimes(event.target); reselect(); applyFolds(); });
  document.addEventListener("htmx:sseError", function () {
    document.querySelectorAll(".live").forEach(function (el) { el.classList.add("offline"); el.textContent = "reconnecting"; });
  });
  document.addEventListener("htmx:sseOpen", function () {
    document.querySelectorAll(".live").forEach(function (el) { el.classList.remove("offline"); el.textContent = "live"; });
  });

  refreshTimes();
  applyFolds();
  setInterval(refreshTimes, 1000);
})();
