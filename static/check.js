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

  // One section per check: created by its first step (steps show as they finish), then
  // replaced by the finished check with its status.
  function section(checkId) {
    var id = "live-" + checkId;
    var found = document.getElementById(id);
    if (found) { return found; }
    var created = element("section", "check card status-running");
    created.id = id;
    var heading = element("h3");
    heading.appendChild(element("span", "badge", "RUNNING"));
    heading.appendChild(document.createTextNode(" " + checkId));
    created.appendChild(heading);
    created.appendChild(element("ul", "steps"));
    progress.appendChild(created);
    return created;
  }

  source.addEventListener("step", function (message) {
    var data = JSON.parse(message.data);
    section(data.check_id).querySelector("ul").appendChild(stepItem(data.step));
  });

  source.addEventListener("check", function (message) {
    var check = JSON.parse(message.data).check;
    var done = section(check.id);
    done.className = "check card status-" + check.status;
    while (done.firstChild) { done.removeChild(done.firstChild); }
    var heading = element("h3");
    heading.appendChild(element("span", "badge", check.status.toUpperCase()));
    heading.appendChild(document.createTextNode(" " + check.title));
    done.appendChild(heading);
    var list = element("ul", "steps");
    check.steps.forEach(function (step) { list.appendChild(stepItem(step)); });
    done.appendChild(list);
  });

  function finish() {
    source.close();
    progress.setAttribute("aria-busy", "false");
    window.location.reload();
  }
  source.addEventListener("report", finish);
  source.addEventListener("gone", finish);
  // A refused stream (the server is serving its share of streams) or a lost one: the page
  // reloads after a pause, and shows the report (or its progress) from the server.
  source.onerror = function () { source.close(); window.setTimeout(finish, 5000); };
})();
