// The station screen: the cards follow the slots over Server-Sent Events.
// EventSource reconnects by itself when the daemon restarts.
(function () {
  "use strict";
  var slots = document.getElementById("slots");
  if (!slots || !window.EventSource) { return; }
  var source = new EventSource("/station/stream");
  source.addEventListener("slots", function (e) {
    slots.innerHTML = JSON.parse(e.data).html;
  });
})();
