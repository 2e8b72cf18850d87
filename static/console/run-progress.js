// A report run's page while the run is queued or running: polls the run's API (same origin, the console's cookie)
// about once a second and updates the status and the progress bar; once the run has finished, reloads the page,
// which then lists the files (or the error). Without JavaScript the page's Refresh link does the same.
(function () {
  "use strict";
  var state = document.getElementById("run-state");
  if (!state) {
    return;
  }
  var url = state.getAttribute("data-run-url");
  var status = document.getElementById("run-status");
  var bar = document.getElementById("run-progress");
  var text = document.getElementById("run-progress-text");
  var started = document.getElementById("run-started");
  var labels = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed" };
  var tones = { queued: "info", running: "info", succeeded: "good", failed: "bad" };
  var finished = { succeeded: true, failed: true };

  function show(run) {
    var progress = run.progress;
    status.textContent = labels[run.status] || run.status;
    status.className = "badge " + (tones[run.status] || "muted");
    state.setAttribute("data-status", run.status);
    if (progress.sessions_total > 0 || finished[run.status]) {
      bar.max = Math.max(progress.sessions_total, 1);
      bar.value = progress.sessions_total > 0 ? progress.sessions_done : bar.max;
    }
    bar.textContent = progress.sessions_done + " of " + progress.sessions_total;
    text.textContent = progress.sessions_done + " of " + progress.sessions_total + " sessions, " +
      progress.events_done + " events";
    if (run.started_at) {
      started.textContent = run.started_at;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (run) {
        show(run);
        if (finished[run.status]) {
          window.setTimeout(function () { window.location.reload(); }, 600);
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 5000); // a transient failure: keep following, more slowly
      });
  }

  window.setTimeout(poll, 1000);
}());
