// The finished report: a link to a step inside a collapsed section opens it; printing shows
// every section and piece of evidence; the printable view's button prints (or saves a PDF).
(function () {
  "use strict";

  function openAround(id) {
    var target = id && document.getElementById(id);
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
    }
    if (target) { target.scrollIntoView(); }
  }

  function fromHash() { openAround(decodeURIComponent(window.location.hash.slice(1))); }
  window.addEventListener("hashchange", fromHash);
  if (window.location.hash) { fromHash(); }

  var opened = [];
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details:not([open])").forEach(function (d) {
      d.open = true;
      opened.push(d);
    });
  });
  window.addEventListener("afterprint", function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
