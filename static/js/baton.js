/* Baton: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  /* Toasts: dismiss buttons, and auto-dismiss for success/info after data-autodismiss ms. */
  function dismiss(toast) {
    toast.classList.add("is-leaving");
    setTimeout(function () { toast.remove(); }, 320);
  }
  function initToasts(root) {
    root.querySelectorAll(".toast").forEach(function (toast) {
      if (toast.dataset.bound) return;
      toast.dataset.bound = "1";
      var close = toast.querySelector("[data-dismiss]");
      if (close) close.addEventListener("click", function () { dismiss(toast); });
      var ms = parseInt(toast.dataset.autodismiss || "0", 10);
      if (ms > 0) {
        var timer = setTimeout(function () { dismiss(toast); }, ms);
        // Hovering or focusing keeps it readable.
        toast.addEventListener("mouseenter", function () { clearTimeout(timer); });
        toast.addEventListener("focusin", function () { clearTimeout(timer); });
      }
    });
  }

  /* Inline errors: add "<id>_errors" to the input's aria-describedby. */
  function linkErrors(root) {
    root.querySelectorAll("[data-errors-for]").forEach(function (list) {
      var input = document.getElementById(list.dataset.errorsFor);
      if (!input) return;
      var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      if (ids.indexOf(list.id) === -1) ids.unshift(list.id);
      input.setAttribute("aria-describedby", ids.join(" "));
      input.setAttribute("aria-invalid", "true");
    });
  }

  /* Menus built on <details>: close on outside click and Escape. */
  function initMenus() {
    document.addEventListener("click", function (event) {
      document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
        if (!menu.contains(event.target)) menu.removeAttribute("open");
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
        menu.removeAttribute("open");
        var summary = menu.querySelector("summary");
        if (summary) summary.focus();
      });
    });
  }

  /* Forms that need a confirmation: <form data-confirm="Are you sure…">. */
  function initConfirm() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
    }, true);
  }

  /* Copy buttons: <button data-copy="#input-id">. */
  function initCopy(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      if (button.dataset.bound) return;
      button.dataset.bound = "1";
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.dataset.copy);
        if (!source) return;
        var text = source.value || source.textContent;
        var label = button.textContent;
        function done() {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 2000);
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { source.select(); });
        } else if (source.select) {
          source.select();
          try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
        }
      });
    });
  }

  /* Live brand preview (console: new tenant). Colour inputs carry data-brand-var="--brand-primary". */
  function hexToRgb(hex) {
    var m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
    if (!m) return null;
    var n = parseInt(m[1], 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  function luminance(hex) {
    var rgb = hexToRgb(hex);
    if (!rgb) return 0;
    var c = rgb.map(function (v) {
      v = v / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  function contrast(a, b) {
    var la = luminance(a), lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }
  function mix(hex, other, weight) {
    var a = hexToRgb(hex), b = hexToRgb(other);
    if (!a || !b) return hex;
    return "#" + a.map(function (x, i) {
      var v = Math.round(x * (1 - weight) + b[i] * weight);
      return (v < 16 ? "0" : "") + v.toString(16);
    }).join("");
  }
  function initBrandPreview() {
    var preview = document.querySelector("[data-brand-preview]");
    if (!preview) return;
    function inputIn(el) { return el && (el.matches("input") ? el : el.querySelector("input")); }
    var inputs = [];
    document.querySelectorAll("[data-brand-var]").forEach(function (el) {
      var input = inputIn(el);
      if (input) { input.dataset.brandVar = el.dataset.brandVar; inputs.push(input); }
    });
    var nameInput = inputIn(document.querySelector("[data-brand-name]"));
    function update() {
      var values = {};
      inputs.forEach(function (input) {
        values[input.dataset.brandVar] = input.value;
        var code = document.querySelector('[data-colour-code="' + input.id + '"]');
        if (code) code.textContent = input.value;
      });
      var primary = values["--brand-primary"], onPrimary = values["--brand-on-primary"], accent = values["--brand-accent"];
      preview.style.setProperty("--brand-primary", primary);
      preview.style.setProperty("--brand-on-primary", onPrimary);
      preview.style.setProperty("--brand-accent", accent);
      preview.style.setProperty("--brand-primary-soft", mix(primary, "#ffffff", 0.88));
      preview.style.setProperty("--brand-primary-strong", mix(primary, "#000000", 0.2));
      preview.style.setProperty("--brand-accent-soft", mix(accent, "#ffffff", 0.88));
      if (nameInput) {
        var label = preview.querySelector("[data-brand-preview-name]");
        if (label) label.textContent = nameInput.value || "Product name";
      }
      [["text", contrast(primary, onPrimary)], ["accent", contrast(accent, "#ffffff")]].forEach(function (pair) {
        var out = preview.querySelector('[data-contrast="' + pair[0] + '"]');
        if (!out) return;
        var ok = pair[1] >= 4.5;
        out.textContent = pair[1].toFixed(2) + ":1 " + (ok ? "✓ passes AA" : "✗ below 4.5:1");
        out.className = ok ? "contrast-ok" : "contrast-bad";
      });
    }
    inputs.forEach(function (input) { input.addEventListener("input", update); });
    if (nameInput) nameInput.addEventListener("input", update);
    update();
  }

  function initAll(root) {
    initToasts(root);
    linkErrors(root);
    initCopy(root);
  }

  onReady(function () {
    initAll(document);
    initMenus();
    initConfirm();
    initBrandPreview();
    document.body.addEventListener("htmx:afterSwap", function (event) { initAll(event.target); });
  });
})();
