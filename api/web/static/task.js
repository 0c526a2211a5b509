// A task's page: while the task is active, poll its status (GET …/tasks/{id}/status?since={cursor}, every second)
// and show its state, progress, error, result link and whether it can be retried. The log is followed with the
// JSON API's log cursor: each answer holds only the lines since the last one, appended here. Polling stops once
// the task has ended and its log is complete.
(function () {
  "use strict";
  const root = document.getElementById("task");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const byId = id => document.getElementById(id);
  const MAX_LINES = 5000; // lines kept on the page; older ones are dropped from the top
  let cursor = root.dataset.logCursor || "";
  let lines = byId("task-log").textContent.split("\n").filter(line => line.length).length;

  function appendLog(fresh) {
    if (!fresh.length) return;
    const log = byId("task-log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(document.createTextNode(`${fresh.join("\n")}\n`));
    lines += fresh.length;
    if (lines > MAX_LINES) {
      const kept = log.textContent.split("\n").filter(line => line.length).slice(-MAX_LINES);
      log.textContent = `${kept.join("\n")}\n`;
      lines = kept.length;
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
    const empty = byId("task-log-empty");
    if (empty) empty.remove();
  }

  function apply(status) {
    const state = byId("task-state");
    state.textContent = status.state;
    state.className = `state-badge ${status.state.toLowerCase()}`;
    byId("task-progress").value = status.percent;
    byId("task-percent").textContent = `${Math.round(status.percent)}%`;
    byId("task-phase").textContent = status.phase ? `${status.phase}${status.message ? `: ${status.message}` : ""}` : "";
    appendLog(status.log);
    if (status.logCursor) cursor = status.logCursor;
    root.dataset.logCursor = cursor;
    const error = byId("task-error");
    if (status.error) {
      const box = document.createElement("div");
      box.className = "notice error";
      const text = document.createElement("p");
      text.textContent = status.error;
      box.append(text);
      error.replaceChildren(box);
    } else {
      error.replaceChildren();
    }
    const result = byId("task-result");
    if (status.resultUrl) { result.href = status.resultUrl; result.hidden = false; }
    const retry = byId("task-retry-form");
    if (retry) retry.hidden = !status.canRetry;
    const cancel = byId("task-cancel");
    if (cancel) cancel.textContent = status.active ? "Cancel task" : "Delete task";
    root.dataset.active = status.active ? "true" : "false";
    root.dataset.logComplete = status.logComplete ? "true" : "false";
  }

  async function poll() {
    try {
      const address = cursor ? `${url}?since=${encodeURIComponent(cursor)}` : url;
      const response = await fetch(address, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        const status = await response.json();
        apply(status);
        if (!status.active && status.logComplete) return;
      }
    } catch { /* try again */ }
    setTimeout(poll, 1000);
  }

  if (root.dataset.active === "true") setTimeout(poll, 500);
})();
