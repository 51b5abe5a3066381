// The large-print audio player of the page, which reads along: the sentence being spoken is highlighted
// in the text and kept in view.
//
// Progressive enhancement. Without this script the page has the browser's own <audio controls>, the
// transcript link and "Listen from here" links that lead to the player, and all of that works. When the
// narration's timings are there (window.narrationTimings, from <slug>.timings.js beside the page: a
// script, because a page opened as a file may load a script from its folder but may not fetch JSON),
// this script shows the large-print player of the template, hides the browser's control (the same
// <audio> element still plays), highlights what is being read, and makes a click on a sentence or a
// "Listen from here" link start the narration there.
//
// Every word the player shows or says is in the page (elements and data- attributes of the template),
// none here, so that the page can be translated without touching this file.
(function () {
  "use strict";

  var SKIP_SECONDS = 10;
  // "Previous section" later than this into a section goes back to its start, as on a CD player.
  var RESTART_SECTION_AFTER = 3;
  // After the reader scrolls on their own, the page stops following the narration for this long.
  var FOLLOW_PAUSE_MS = 10000;
  // A spoken sentence between these fractions of the window's height is left where it is, so the text
  // does not move under the reader's eyes at every sentence; one outside them is brought to BRING_TO.
  var COMFORT_TOP = 0.1, COMFORT_BOTTOM = 0.8, BRING_TO = 0.25;
  var SPEED_KEY = "reader.speed";

  var store = {
    get: function (key) { try { return window.localStorage.getItem(key); } catch (e) { return null; } },
    set: function (key, value) { try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ } }
  };

  // The timings as the audio stage writes them (version 1, chapters and utterances), and for the very file
  // the page plays: the MP3 and the M4B do not start their sound at quite the same instant.
  function usable(timings, audio) {
    return Boolean(timings && timings.version === 1 && Array.isArray(timings.utterances) &&
      Array.isArray(timings.chapters) && timings.utterances.length > 0 && timings.chapters.length > 0 &&
      timings.audio === audio.getAttribute("src"));
  }

  // The index of the last item of *list* (sorted by start) that has started at *seconds*, or -1.
  function lastStarted(list, seconds) {
    var low = 0, high = list.length - 1, found = -1;
    var ms = seconds * 1000 + 1;           // a seek to an item's start may land a hair before it
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (list[middle].start_ms <= ms) { found = middle; low = middle + 1; } else { high = middle - 1; }
    }
    return found;
  }

  // 75 → "1:15"; 3675 → "1:01:15".
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds || 0));
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    var tail = (s < 10 ? "0" : "") + s;
    return h ? h + ":" + (m < 10 ? "0" : "") + m + ":" + tail : m + ":" + tail;
  }

  // The element an utterance reads, to highlight. Its target is a sentence's <span class="s"> or a
  // heading; a block (a section, a box, a question) is read by its heading, whose id is "<id>-h"
  // (blocks.html); the words the narration adds ("A list of 3 items", "Warning.") may name no element of
  // the page: then nothing is highlighted while they are heard.
  function spokenElement(main, id) {
    var element = document.getElementById(id);
    if (element && !main.contains(element)) { element = null; }
    if (element && (element.classList.contains("s") || /^H[1-6]$/.test(element.tagName))) { return element; }
    var heading = document.getElementById(id + "-h");
    if (heading && main.contains(heading)) { return heading; }
    if (!element) { return null; }
    var label = element.getAttribute("aria-labelledby");
    if (label && document.getElementById(label)) { return document.getElementById(label); }
    // a whole block (a list, a table, a figure) would light up half the screen: highlight nothing instead
    return /^(SECTION|DIV|TABLE|FIGURE|UL|OL|DL|ARTICLE|MAIN)$/.test(element.tagName) ? null : element;
  }

  // A page whose narration was built before the timings existed: "Listen from here" seeks by the caption
  // cue with the heading's id, which browsers load only over HTTP (opened as a file, the link leads to
  // the browser's player instead).
  function captionsOnly(audio) {
    var track = audio.querySelector("track");
    if (track && track.track) { track.track.mode = "hidden"; }   // load the cues without covering the page
    document.querySelectorAll("a[data-cue]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var cues = track && track.track && track.track.cues;
        var cue = cues && cues.getCueById(link.getAttribute("data-cue"));
        if (!cue) { return; }
        event.preventDefault();
        audio.currentTime = cue.startTime;
        audio.play();
        audio.focus();
      });
    });
  }

  function start() {
    var section = document.getElementById("narration");
    var audio = section && section.querySelector("audio");
    if (!audio) { return; }
    var ui = section.querySelector(".player");
    var main = document.querySelector("main");
    var timings = window.narrationTimings;
    if (!ui || !main || !usable(timings, audio)) { captionsOnly(audio); return; }

    var utterances = timings.utterances.slice().sort(function (a, b) { return a.start_ms - b.start_ms; });
    var chapters = timings.chapters.slice().sort(function (a, b) { return a.start_ms - b.start_ms; });
    var elements = utterances.map(function (u) { return spokenElement(main, u.target); });
    // where a click starts: the first utterance that reads an element, and the first that has a target id
    var startOfElement = new Map(), startOfTarget = new Map();
    utterances.forEach(function (u, i) {
      if (elements[i] && !startOfElement.has(elements[i])) { startOfElement.set(elements[i], u.start_ms / 1000); }
      if (!startOfTarget.has(u.target)) { startOfTarget.set(u.target, u.start_ms / 1000); }
    });

    var $ = function (selector) { return ui.querySelector(selector); };
    var playButton = $("[data-command=play]"), playLabel = playButton.querySelector(".player-label");
    var elapsedText = $(".player-elapsed"), totalText = $(".player-total"), timeText = $(".player-time");
    var slider = $("#player-position"), speed = $("#player-speed"), sectionText = $(".player-section");
    var dock = $(".player-dock"), bar = $(".player-bar");
    var reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

    var highlighted = null, chapterShown = -1, frame = 0, started = false, sliding = false;
    var userScrolledAt = -Infinity;

    function duration() {
      return isFinite(audio.duration) && audio.duration > 0 ? audio.duration : (timings.duration_ms || 0) / 1000;
    }

    // -- what is shown: time, position, section, play state, highlight --------------------------------

    function highlight(element) {
      if (element === highlighted) { return; }
      if (highlighted) { highlighted.classList.remove("now-reading"); }
      highlighted = element;
      if (element) {
        element.classList.add("now-reading");
        if (!audio.paused) { keepInView(element); }
      }
    }

    function showChapter(index) {
      if (index === chapterShown || index < 0) { return; }
      chapterShown = index;
      // the live region: the only announcement the player makes, once per section, politely
      sectionText.textContent = chapters[index].title;
    }

    // Written only when it changes: update() runs at every frame while playing.
    function setText(element, text) { if (element.textContent !== text) { element.textContent = text; } }

    function update() {
      var now = audio.currentTime, total = duration();
      setText(elapsedText, clock(now));
      setText(totalText, clock(total));
      if (!sliding) {
        slider.max = String(total || 1);
        slider.value = String(now);
      }
      var spoken = timeText.textContent.replace(/\s+/g, " ").trim();      // "1:05 of 4:23", in the page's words
      if (slider.getAttribute("aria-valuetext") !== spoken) { slider.setAttribute("aria-valuetext", spoken); }
      var index = lastStarted(utterances, now);
      highlight(started || now > 0 ? (index >= 0 ? elements[index] : null) : null);
      showChapter(Math.max(0, lastStarted(chapters, now)));
      var playing = !audio.paused && !audio.ended;
      if (ui.getAttribute("data-state") !== (playing ? "playing" : "paused")) {
        ui.setAttribute("data-state", playing ? "playing" : "paused");
        playLabel.textContent = ui.getAttribute(playing ? "data-pause" : "data-play");
      }
    }

    // While playing, follow the sound at every frame (timeupdate fires only about four times a second,
    // late for a short sentence); when paused, the media events suffice.
    function tick() {
      update();
      frame = audio.paused ? 0 : window.requestAnimationFrame(tick);
    }

    // -- keeping the spoken sentence in view ------------------------------------------------------------

    function barHeight() { return ui.classList.contains("is-floating") ? bar.getBoundingClientRect().height : 0; }

    // Our own scrolling is told from the reader's by its end: from scrollTo() until the browser's
    // scrollend (or at most OUR_SCROLL_MS, for browsers without that event), scroll events are ours.
    var OUR_SCROLL_MS = 3000, ourScroll = false, ourScrollTimer = 0, graceUntil = 0;
    function scrollOurselves(top) {
      ourScroll = true;
      window.clearTimeout(ourScrollTimer);
      ourScrollTimer = window.setTimeout(function () { ourScroll = false; }, OUR_SCROLL_MS);
      window.scrollTo({ top: top, behavior: reduceMotion.matches ? "instant" : "smooth" });
    }
    window.addEventListener("scrollend", function () { ourScroll = false; });

    function keepInView(element) {
      if (performance.now() - userScrolledAt < FOLLOW_PAUSE_MS) { return; }   // the reader is looking elsewhere
      var box = element.getBoundingClientRect();
      var height = window.innerHeight - barHeight();
      if (box.top >= height * COMFORT_TOP && box.bottom <= height * COMFORT_BOTTOM) { return; }
      scrollOurselves(window.scrollY + box.top - height * BRING_TO);
    }

    // The wheel, a finger or a scrolling key is always the reader, even during our own scrolling.
    function readerScrolled() { userScrolledAt = performance.now(); ourScroll = false; }
    window.addEventListener("scroll", function () {
      if (!ourScroll && performance.now() > graceUntil) { userScrolledAt = performance.now(); }
    }, { passive: true });
    ["wheel", "touchmove"].forEach(function (type) {
      window.addEventListener(type, readerScrolled, { passive: true });
    });
    document.addEventListener("keydown", function (event) {
      if (/^(PageUp|PageDown|ArrowUp|ArrowDown|Home|End| )$/.test(event.key) && !ui.contains(event.target) &&
          !event.target.closest("button, input, select, textarea, summary")) {     // there the keys do not scroll
        readerScrolled();
      }
    });

    // The controls stay at hand while the reader follows the text: once the narration has started, the
    // player's bar (the same buttons, not a copy) is fixed at the bottom of the window whenever the player
    // itself is scrolled out of view. Its place is kept, so the page does not jump when it leaves.
    function float(out) {
      var floating = out && started;
      if (floating === ui.classList.contains("is-floating")) { return; }
      dock.style.minHeight = floating ? dock.getBoundingClientRect().height + "px" : "";
      ui.classList.toggle("is-floating", floating);
      document.documentElement.style.setProperty("--player-bar-height", floating ? barHeight() + "px" : "0px");
    }
    // the page ends below the floating bar, whatever its height (the text size may change meanwhile)
    if ("ResizeObserver" in window) {
      new ResizeObserver(function () {
        if (ui.classList.contains("is-floating")) {
          document.documentElement.style.setProperty("--player-bar-height", barHeight() + "px");
        }
      }).observe(bar);
    }
    var dockOut = false;
    if ("IntersectionObserver" in window) {
      new IntersectionObserver(function (entries) {
        dockOut = !entries[entries.length - 1].isIntersecting;
        float(dockOut);
      }).observe(dock);
    }

    // -- commands ----------------------------------------------------------------------------------------

    function play() {
      var promise = audio.play();
      if (promise && promise.catch) { promise.catch(function () { update(); }); }   // refused: stay paused
    }

    function seek(seconds) {
      seconds = Math.max(0, Math.min(duration() || seconds, seconds));
      audio.currentTime = seconds;
      update();
    }

    function playFrom(seconds) {
      started = true;
      userScrolledAt = -Infinity;          // the reader chose this place: follow it again
      seek(seconds);
      play();
    }

    function chapterAt(seconds) { return Math.max(0, lastStarted(chapters, seconds)); }

    var commands = {
      play: function () {
        if (audio.paused || audio.ended) { started = true; play(); } else { audio.pause(); }
      },
      back: function () { seek(audio.currentTime - SKIP_SECONDS); },
      forward: function () { seek(audio.currentTime + SKIP_SECONDS); },
      previous: function () {
        var index = chapterAt(audio.currentTime);
        if (audio.currentTime - chapters[index].start_ms / 1000 < RESTART_SECTION_AFTER && index > 0) { index -= 1; }
        seek(chapters[index].start_ms / 1000);
      },
      next: function () {
        var index = chapterAt(audio.currentTime);
        if (index + 1 < chapters.length) { seek(chapters[index + 1].start_ms / 1000); }
      },
      start: function () { seek(0); },
      end: function () { seek(duration()); },
      slower: function () { changeSpeed(-1); },
      faster: function () { changeSpeed(1); }
    };

    // A command is the reader's own choice of where to listen: the page follows the narration again even
    // if they scrolled a moment ago (if only to reach the player).
    function run(name) {
      userScrolledAt = -Infinity;
      // a scroll event dispatched just after the command belongs to what led to it (the browser bringing
      // the button into view), not to a new wish of the reader
      graceUntil = performance.now() + 300;
      commands[name]();
    }

    ui.addEventListener("click", function (event) {
      var button = event.target.closest("[data-command]");
      if (button && commands[button.getAttribute("data-command")]) { run(button.getAttribute("data-command")); }
    });

    // The position slider: dragging it moves through the narration.
    slider.addEventListener("input", function () {
      userScrolledAt = -Infinity;
      sliding = true;
      seek(parseFloat(slider.value));
      sliding = false;
    });

    // -- speed, remembered ------------------------------------------------------------------------------

    function setSpeed(value) {
      var option = Array.prototype.find.call(speed.options, function (o) { return parseFloat(o.value) === value; });
      if (!option) { return; }
      speed.value = option.value;
      audio.defaultPlaybackRate = audio.playbackRate = value;     // the default survives a reload of the media
      store.set(SPEED_KEY, option.value);
    }
    function changeSpeed(step) {
      var next = speed.selectedIndex + step;
      if (next >= 0 && next < speed.options.length) { setSpeed(parseFloat(speed.options[next].value)); }
    }
    speed.addEventListener("change", function () { setSpeed(parseFloat(speed.value)); });
    var saved = parseFloat(store.get(SPEED_KEY));
    if (saved) { setSpeed(saved); }

    // -- keyboard: only while a control of the player has the focus (WCAG 2.1.4) -------------------------

    ui.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.altKey || event.metaKey || event.target.tagName === "SELECT" ||
          event.target.closest(".player-keys")) { return; }
      var onSlider = event.target === slider;
      var key = event.key, command = null;
      if (key === "k" || key === "K" || (key === " " && onSlider)) { command = "play"; }
      else if (key === "ArrowLeft" || (key === "ArrowDown" && onSlider)) { command = "back"; }
      else if (key === "ArrowRight" || (key === "ArrowUp" && onSlider)) { command = "forward"; }
      else if (key === "PageUp") { command = "previous"; }
      else if (key === "PageDown") { command = "next"; }
      else if (key === "<") { command = "slower"; }
      else if (key === ">") { command = "faster"; }
      else if (onSlider && key === "Home") { command = "start"; }
      else if (onSlider && key === "End") { command = "end"; }
      if (!command) { return; }
      event.preventDefault();
      run(command);
    });

    // -- starting from the text ---------------------------------------------------------------------------

    // "Listen from here" under each heading: its data-cue is the id the heading's utterance targets.
    document.querySelectorAll("a[data-cue]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var at = startOfTarget.get(link.getAttribute("data-cue"));
        if (at === undefined) { return; }             // not in the narration: the link leads to the player
        event.preventDefault();
        playFrom(at);
      });
    });

    // A click or tap on a sentence or a heading, unless it follows a link, opens something or selects
    // text. A double click selects a word, and its first click cannot know it: the narration starts
    // only when no second click has come within DOUBLE_CLICK_MS and nothing is selected.
    var DOUBLE_CLICK_MS = 300, pendingClick = 0;
    main.addEventListener("click", function (event) {
      window.clearTimeout(pendingClick);
      if (event.defaultPrevented || event.button !== 0 || event.detail > 1 ||
          event.target.closest("a, button, input, select, textarea, summary, label, .player")) { return; }
      var element = event.target.closest(".s, h1, h2, h3, h4, h5, h6");
      var at = element && startOfElement.get(element);
      if (at === undefined || at === null) { return; }
      pendingClick = window.setTimeout(function () {
        var selection = window.getSelection && window.getSelection();
        if (!selection || selection.isCollapsed) { playFrom(at); }
      }, DOUBLE_CLICK_MS);
    });

    // -- the media element's events --------------------------------------------------------------------

    ["loadedmetadata", "durationchange", "timeupdate", "seeked", "pause", "ended", "ratechange"].forEach(function (type) {
      audio.addEventListener(type, update);
    });
    audio.addEventListener("play", function () {
      started = true;
      float(dockOut);
      if (highlighted) { keepInView(highlighted); }     // chosen while paused (a section, a seek)
      if (!frame) { frame = window.requestAnimationFrame(tick); }
    });
    audio.addEventListener("error", function () { $(".player-error").hidden = false; });

    // Show the player (its live region is filled while still hidden, so loading the page announces nothing).
    update();
    audio.hidden = true;
    ui.hidden = false;
    document.documentElement.classList.add("player-ready");
  }

  document.addEventListener("DOMContentLoaded", start);
}());
