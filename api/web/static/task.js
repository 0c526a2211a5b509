// A task's page: while the task is active, poll its status (GET …/tasks/{id}/status, every second) and show its
// state, progress, log tail, error, result link and whether it can be retried. Stops once the task has ended.
(function () {
  "use strict";
  const root = document.getElementById("task");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const byId = id => document.getElementById(id);

  function apply(status) {
    const state = byId("task-state");
    state.textContent = status.state;
    state.className = `state-badge ${status.state.toLowerCase()}`;
    byId("task-progress").value = status.percent;
    byId("task-percent").textContent = `${Math.round(status.percent)}%`;
    byId("task-phase").textContent = status.phase ? `${status.phase}${status.message ? `: ${status.message}` : ""}` : "";
    const log = byId("task-log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = status.log.length ? `${status.log.join("\n")}\n` : "";
    if (atBottom) log.scrollTop = log.scrollHeight;
    const empty = byId("task-log-empty");
    if (empty && status.log.length) empty.remove();
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
  }

  async function poll() {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        const status = await response.json();
        apply(status);
        if (!status.active) return;
      }
    } catch { /* try again */ }
    setTimeout(poll, 1000);
  }

  if (root.dataset.active === "true") setTimeout(poll, 500);
})();
