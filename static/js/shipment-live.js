/* Shipments: progressive enhancements. Both pages work without this file (the timeline then
   shows what was there when the page loaded; exports simply download).

   1. Live timeline: an element with data-live-url polls it every data-live-every seconds with
      ?since=<newest event id> and If-None-Match; new milestones are put in place by the time
      they happened and announced in the polite live region. Paused while the tab is hidden.
   2. Filters: details[data-open-wide] starts open on screens wider than a phone.
   3. Export loading state: a link with data-export shows its status element until the server
      answers (it sets the cookie named by data-export-cookie to the token we sent). */
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  function fragment(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function initLive(root) {
    var url = root.dataset.liveUrl;
    var every = Math.max(parseInt(root.dataset.liveEvery || "10", 10), 2) * 1000;
    var since = root.dataset.since || "0";
    var etag = "";
    var list = document.getElementById(root.dataset.liveList);
    var announcer = document.getElementById(root.dataset.liveAnnounce);
    var state = document.getElementById(root.dataset.liveState);
    var failures = 0;
    var timer = null;

    function place(item) {
      var id = item.dataset.eventId;
      if (id && list.querySelector('[data-event-id="' + id + '"]')) return false;
      var at = item.dataset.occurred || "";
      var after = null;
      list.querySelectorAll("[data-occurred]").forEach(function (existing) {
        if ((existing.dataset.occurred || "") <= at) after = existing;
      });
      if (after) after.after(item);
      else list.prepend(item);
      item.classList.add("is-new");
      return true;
    }

    function show(payload) {
      var empty = document.getElementById(root.dataset.liveEmpty || "");
      (payload.events || []).forEach(function (event) {
        var item = fragment(event.html);
        if (item && place(item)) {
          if (empty) empty.hidden = true;
          list.hidden = false;
          if (announcer) announcer.textContent = event.announce || "";
        }
      });
      Object.keys(payload.regions || {}).forEach(function (id) {
        var region = document.getElementById(id);
        if (region) region.innerHTML = payload.regions[id];
      });
      if (payload.since) since = String(payload.since);
    }

    function schedule(delay) {
      clearTimeout(timer);
      timer = setTimeout(poll, delay);
    }

    function poll() {
      if (document.hidden) return schedule(every);
      var headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      fetch(url + (url.indexOf("?") === -1 ? "?" : "&") + "since=" + encodeURIComponent(since), {
        headers: headers,
        credentials: "same-origin",
        cache: "no-store",
      }).then(function (response) {
        if (response.redirected) {  // sent to sign in: the session ended, polling cannot go on
          if (state) {
            state.textContent = root.dataset.liveSignedOut || state.textContent;
            state.hidden = false;
          }
          return "stop";
        }
        if (response.status === 304) return null;
        if (!response.ok) throw new Error("HTTP " + response.status);
        etag = response.headers.get("ETag") || "";
        return response.json();
      }).then(function (payload) {
        if (payload === "stop") return;
        failures = 0;
        if (state) state.hidden = true;
        if (payload) show(payload);
        schedule(every);
      }).catch(function () {
        failures += 1;
        if (state && failures >= 3) state.hidden = false;
        schedule(Math.min(every * Math.pow(2, failures), 120000));
      });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) schedule(0);
    });
    root.dataset.liveBound = "1";
    schedule(every);
  }

  function initExport(link) {
    var status = document.getElementById(link.dataset.exportStatus);
    var cookie = link.dataset.exportCookie;
    if (!status || !cookie || !link.dataset.exportBase) return;
    link.addEventListener("click", function () {
      var token = String(Date.now()) + Math.random().toString(16).slice(2, 8);
      // The filter as the address bar has it now (htmx pushes each search there), not as the page loaded.
      var params = new URLSearchParams(window.location.search);
      params.delete("after");
      params.set("token", token);
      link.setAttribute("href", link.dataset.exportBase + "?" + params.toString());
      status.hidden = false;
      link.setAttribute("aria-busy", "true");
      var started = Date.now();
      var watch = setInterval(function () {
        var answered = document.cookie.split("; ").some(function (pair) { return pair === cookie + "=" + token; });
        if (answered || Date.now() - started > 120000) {
          clearInterval(watch);
          status.hidden = true;
          link.removeAttribute("aria-busy");
        }
      }, 400);
    });
  }

  onReady(function () {
    /* Filters folded away on phones are laid out open on wider screens. */
    if (window.matchMedia && window.matchMedia("(min-width: 721px)").matches) {
      document.querySelectorAll("details[data-open-wide]").forEach(function (details) { details.open = true; });
    }
    document.querySelectorAll("[data-live-url]").forEach(function (root) {
      if (!root.dataset.liveBound) initLive(root);
    });
    document.querySelectorAll("a[data-export]").forEach(initExport);
  });
})();
