// Live preview for `publish serve`: the server adds this script to the pages it serves (never to the
// files in output/). It reloads the page when its article has been rebuilt, keeps the player's place
// across the reload, and shows why the last save could not be built.
(function () {
  "use strict";
  if (window.top !== window) { return; }          // a page shown inside the preview: the preview reloads
  var PLACE = "publish.player:" + location.pathname;

  var audio = document.querySelector("audio");
  var place = parseFloat(sessionStorage.getItem(PLACE) || "");
  if (audio && place > 0) {
    audio.addEventListener("loadedmetadata", function () { audio.currentTime = Math.min(place, audio.duration || place); },
                           { once: true });
  }
  sessionStorage.removeItem(PLACE);

  function shows(slugs) {
    var path = location.pathname;
    if (path === "/" || path === "/index.html") { return true; }      // the catalogue lists every article
    return slugs.some(function (slug) {
      return path.indexOf("/" + slug + "/") === 0 || path === "/__publish__/preview/" + slug;
    });
  }

  var banner = null;
  function showProblems(text) {
    if (!banner) {
      banner = document.createElement("section");
      banner.setAttribute("role", "alert");
      banner.setAttribute("aria-label", "Build problems");
      banner.style.cssText = "position: sticky; top: 0; z-index: 100; margin: 0; padding: 0.5em 1rem; " +
        "background: var(--background, #fff); color: var(--text, #000); border: 0.25em solid var(--focus, #b34700);";
      document.body.insertBefore(banner, document.body.firstChild);
    }
    banner.textContent = "";
    var intro = document.createElement("p");
    intro.textContent = "The last save could not be built. This page shows the last good version.";
    intro.style.fontWeight = "700";
    var details = document.createElement("pre");
    details.textContent = text;
    details.style.cssText = "white-space: pre-wrap; font-size: 0.8rem; margin: 0.5em 0;";
    banner.appendChild(intro);
    banner.appendChild(details);
  }

  var events = new EventSource("/__publish__/events");
  events.addEventListener("open", function () { document.documentElement.setAttribute("data-live-reload", "on"); });
  events.addEventListener("problems", function (event) { showProblems(JSON.parse(event.data).text); });
  events.addEventListener("clear", function () {
    if (banner) { banner.remove(); banner = null; }
  });
  events.addEventListener("reload", function (event) {
    if (!shows(JSON.parse(event.data).slugs)) { return; }
    if (audio && audio.currentTime > 0) { sessionStorage.setItem(PLACE, String(audio.currentTime)); }
    location.reload();
  });
}());
