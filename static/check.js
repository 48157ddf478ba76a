// Live progress of a check run: server-sent events, rendered with textContent only (no HTML
// from the server is ever interpreted), then the final report page once the run is done.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var progress = document.getElementById("progress");
  var source = new EventSource(live.getAttribute("data-events"));

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function stepItem(step) {
    var item = element("li", "step status-" + step.status);
    item.appendChild(element("span", "badge", step.status.toUpperCase()));
    item.appendChild(element("span", "step-title", " " + step.title));
    if (step.message) { item.appendChild(element("span", "step-message", ": " + step.message)); }
    if (step.children && step.children.length) {
      var list = element("ul", "steps");
      step.children.forEach(function (child) { list.appendChild(stepItem(child)); });
      item.appendChild(list);
    }
    return item;
  }

  source.addEventListener("check", function (message) {
    var check = JSON.parse(message.data).check;
    var section = element("section", "check card status-" + check.status);
    var heading = element("h3");
    heading.appendChild(element("span", "badge", check.status.toUpperCase()));
    heading.appendChild(document.createTextNode(" " + check.title));
    section.appendChild(heading);
    var list = element("ul", "steps");
    check.steps.forEach(function (step) { list.appendChild(stepItem(step)); });
    section.appendChild(list);
    progress.appendChild(section);
  });

  function finish() {
    source.close();
    progress.setAttribute("aria-busy", "false");
    window.location.reload();
  }
  source.addEventListener("report", finish);
  source.addEventListener("gone", finish);
  source.onerror = function () { source.close(); window.setTimeout(finish, 1000); };
})();

// Printing shows every piece of evidence.
window.addEventListener("beforeprint", function () {
  document.querySelectorAll("details").forEach(function (d) { d.setAttribute("open", ""); });
});
