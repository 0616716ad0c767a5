// The station screen: the cards follow the slots over Server-Sent Events.
//
// When the stream breaks (the daemon stopped, crashed or restarts) the
// screen says so at once: the "connection lost" banner shows and the cards
// turn grey, so no card goes on saying 正在采集 for a station that is gone.
// EventSource retries by itself while the server is unreachable; if it gives
// up (an answer that is not a stream, e.g. while the daemon starts), a new
// one is opened a few seconds later. The first cards that arrive clear the
// banner.
//
// The layout is CSS (app.css): the grid and each card's letters follow the
// screen and the number of occupied slots. What a card says can still be
// longer than its room (a long English line, an odd name): fit() then makes
// that card's letters smaller until all of it shows, rather than cut it. A
// card that asks the officer to do something says it in full where that
// fits, else in its few words.
(function () {
  "use strict";
  var slots = document.getElementById("slots");
  var lost = document.getElementById("lost");
  if (!slots) { return; }
  var RETRY_MS = 3000;
  var SMALLEST_PX = 9;
  var source = null;

  function overflows(el) {
    return el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
  }

  function fit() {
    var inner = slots.querySelectorAll(".cards .card .in, .free.in-grid");
    for (var i = 0; i < inner.length; i++) {
      var el = inner[i];
      var card = el.parentNode;
      el.style.fontSize = "";
      if (el.querySelector(".instruction.short")) {  // the whole instruction if it fits, else the short one
        card.classList.add("full");
        if (overflows(el)) { card.classList.remove("full"); }
      }
      var px = parseFloat(window.getComputedStyle(el).fontSize);
      while (overflows(el) && px > SMALLEST_PX) {
        px = Math.max(SMALLEST_PX, px * 0.92);
        el.style.fontSize = px + "px";
      }
    }
  }

  function setLost(yes) {
    if (lost) { lost.hidden = !yes; }
    document.body.classList.toggle("offline", yes);
    fit();
  }

  function connect() {
    source = new EventSource("/station/stream");
    source.addEventListener("slots", function (e) {
      slots.innerHTML = JSON.parse(e.data).html;
      setLost(false);
    });
    source.addEventListener("error", function () {
      setLost(true);
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        window.setTimeout(connect, RETRY_MS);
      }
    });
  }

  window.addEventListener("resize", fit);
  fit();
  if (window.EventSource) { connect(); }
})();
