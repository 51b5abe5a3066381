// Reader controls for the large-print page: text size, colours and line
// spacing, remembered in localStorage. The page is complete without this
// script: the controls stay hidden and the browser's own settings apply.
// The narration's player, and "Listen from here", are player.js.
(function () {
  "use strict";
  var root = document.documentElement;
  var store = {
    get: function (key) { try { return window.localStorage.getItem("reader." + key); } catch (e) { return null; } },
    set: function (key, value) { try { window.localStorage.setItem("reader." + key, value); } catch (e) { /* private mode */ } }
  };
  var SCALES = [0.75, 0.875, 1, 1.25, 1.5, 1.75, 2];

  function applyScale(index) {
    index = Math.max(0, Math.min(SCALES.length - 1, index));
    root.style.setProperty("--text-scale", String(SCALES[index]));
    store.set("scale", String(index));
    return index;
  }
  function applySetting(name, value) {
    if (name === "theme") { root.setAttribute("data-theme", value); }
    if (name === "spacing") { root.setAttribute("data-spacing", value); }
    store.set(name, value);
  }

  // Apply saved choices before the page is shown, to avoid a flash of the defaults.
  var scale = applyScale(parseInt(store.get("scale") || "2", 10));
  ["theme", "spacing"].forEach(function (name) {
    var saved = store.get(name);
    if (saved) { applySetting(name, saved); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var controls = document.querySelector(".reader-controls");
    if (controls) {
      controls.hidden = false;
      controls.addEventListener("click", function (event) {
        var action = event.target.getAttribute("data-action");
        if (action === "smaller") { scale = applyScale(scale - 1); }
        if (action === "larger") { scale = applyScale(scale + 1); }
        if (action === "reset") { scale = applyScale(2); }
      });
      controls.querySelectorAll("select[data-setting]").forEach(function (select) {
        var name = select.getAttribute("data-setting");
        select.value = root.getAttribute("data-" + name) || select.value;
        select.addEventListener("change", function () { applySetting(name, select.value); });
      });
    }
  });
}());
