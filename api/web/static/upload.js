// The upload box of a dataset page: files go through the chunked share API (POST /share/init, then
// /share/{token}/upload/chunked per chunk, then /share/{token}/commit), one progress bar per file.
//
// Resuming: the share token and the files' ids are kept in localStorage. After a reload the page asks the
// server which chunks it holds (GET /share/{token}) and, once the same files are chosen again, sends only the
// missing ones. The JSON API wants a Bearer token: the page gets a short-lived one from POST /web/token (its
// session cookie plus the page's CSRF token); the session cookie itself stays HttpOnly.

const form = document.getElementById("upload");
if (form) {
  setUp(form);
}

function setUp(form) {
  const base = form.dataset.base || "";
  const org = form.dataset.org;
  const dataset = form.dataset.dataset;
  const storageKey = `georeg-upload:${org}/${dataset}`;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const input = form.querySelector('input[type="file"]');
  const list = document.getElementById("upload-progress");
  const resumeNote = document.getElementById("upload-resume");
  let apiToken = null;

  async function bearer() {
    if (apiToken && apiToken.expiresAt - Date.now() > 60_000) return apiToken.token;
    const response = await fetch(`${base}/web/token`, {
      method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin",
    });
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    apiToken = { token: body.token, expiresAt: Date.parse(body.expires) };
    return apiToken.token;
  }

  async function api(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(`${base}${path}`, {
        method, body, headers: { Authorization: `Bearer ${await bearer()}` },
      });
      if (response.status === 401 && attempt === 0) { apiToken = null; continue; }
      if (response.status === 503 && attempt < 5) { await sleep(retryAfter(response.headers.get("Retry-After"))); continue; }
      if (!response.ok) {
        const error = new Error(await errorText(response));
        error.status = response.status;
        throw error;
      }
      return response.json();
    }
  }

  function saved() {
    try { return JSON.parse(localStorage.getItem(storageKey)) || null; } catch { return null; }
  }
  function save(state) { localStorage.setItem(storageKey, JSON.stringify(state)); }
  function forget() { localStorage.removeItem(storageKey); }

  // The share of an interrupted upload, if the server still has it running.
  async function runningShare() {
    const state = saved();
    if (!state || !state.token) return null;
    try {
      const info = await api("GET", `/share/${encodeURIComponent(state.token)}`);
      if (info.status !== "running") { forget(); return null; }
      return { state, info };
    } catch (error) {
      if ([403, 404, 409].includes(error.status)) { forget(); return null; }
      throw error;
    }
  }

  async function announceInterrupted() {
    if (!saved()) return;
    try {
      const share = await runningShare();
      if (!share) return;
      const waiting = share.info.uploads.map(u => `${u.path} (${Math.floor(100 * u.receivedChunks.length / u.totalChunks)}%)`);
      const staged = share.info.entries.map(e => e.path);
      const names = [...waiting, ...staged];
      if (names.length) {
        resumeNote.className = "notice";
        resumeNote.textContent = `An upload was interrupted: ${names.join(", ")}. Choose the same files again and press Upload to resume it.`;
      }
    } catch (error) {
      resumeNote.className = "notice error";
      resumeNote.textContent = `Could not check the interrupted upload: ${error.message}`;
    }
  }

  function row(file, path) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = path;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${path}`);
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "waiting";
    item.append(label, " ", bar, state);
    list.append(item);
    return {
      item, path, file,
      show(sent) {
        const percent = file.size ? Math.min(100, Math.floor((100 * sent) / file.size)) : 100;
        bar.value = percent;
        state.textContent = `${percent}%`;
      },
      note(text, failed = false) {
        state.textContent = text;
        if (failed) { state.classList.add("failed"); state.setAttribute("role", "alert"); }
      },
    };
  }

  async function sendFile(token, entry, known, chunkSize, state) {
    const { file, path } = entry;
    if (file.size === 0) {
      const body = new FormData();
      body.append("path", path);
      body.append("file", file, file.name);
      await api("POST", `/share/${encodeURIComponent(token)}/upload`, body);
      entry.show(0);
      return;
    }
    const fileId = fileIdOf(path, file);
    state.files[fileId] = path;
    save(state);
    const totalChunks = Math.max(1, Math.ceil(file.size / chunkSize));
    const received = new Set(known.get(fileId) || []);
    let done = 0;
    for (const index of received) done += chunkLength(file.size, chunkSize, index);
    entry.show(done);
    for (let index = 0; index < totalChunks; index++) {
      if (received.has(index)) continue;
      const start = index * chunkSize;
      const chunk = file.slice(start, Math.min(file.size, start + chunkSize));
      const body = new FormData();
      body.append("fileId", fileId);
      body.append("chunkIndex", String(index));
      body.append("totalChunks", String(totalChunks));
      body.append("totalFileSize", String(file.size));
      body.append("path", path);
      body.append("chunk", chunk, file.name);
      await sendChunk(`${base}/share/${encodeURIComponent(token)}/upload/chunked`, body,
        loaded => entry.show(done + Math.min(loaded, chunk.size)));
      done += chunk.size;
      entry.show(done);
    }
  }

  async function sendChunk(url, body, onProgress) {
    for (let attempt = 0; ; attempt++) {
      const token = await bearer();
      const result = await new Promise((resolve, reject) => {
        const request = new XMLHttpRequest();
        request.open("POST", url);
        request.setRequestHeader("Authorization", `Bearer ${token}`);
        request.upload.onprogress = event => onProgress(event.loaded);
        request.onload = () => resolve(request);
        request.onerror = () => reject(new Error("the connection to the server was lost; press Upload to resume"));
        request.send(body);
      });
      if (result.status >= 200 && result.status < 300) return JSON.parse(result.responseText);
      if (result.status === 401 && attempt === 0) { apiToken = null; continue; }
      if (result.status === 503 && attempt < 5) { await sleep(retryAfter(result.getResponseHeader("Retry-After"))); continue; }
      throw new Error(messageOf(result.responseText, result.status));
    }
  }

  async function refreshListing() {
    const response = await fetch(location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["file-list", "dataset-totals"]) {
      const fresh = page.getElementById(id);
      const current = document.getElementById(id);
      if (fresh && current) current.replaceWith(document.importNode(fresh, true));
    }
  }

  form.addEventListener("submit", async event => {
    event.preventDefault();
    const files = [...input.files];
    if (!files.length) {
      resumeNote.className = "notice error";
      resumeNote.textContent = "Choose one or more files first.";
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    list.replaceChildren();
    resumeNote.className = "";
    resumeNote.textContent = "";
    const chunkSize = Math.max(1024, Number(form.dataset.chunkSize) || 8 * 1024 * 1024);
    const folder = form.dataset.folder;
    const entries = files.map(file => row(file, folder ? `${folder}/${file.name}` : file.name));
    try {
      let share = await runningShare();
      if (!share) {
        const body = new FormData();
        body.append("tag", `${org}/${dataset}`);
        const { token } = await api("POST", "/share/init", body);
        share = { state: { token, files: {} }, info: { entries: [], uploads: [] } };
        save(share.state);
      }
      const { state, info } = share;
      const known = new Map(info.uploads.map(u => [u.fileId, u.receivedChunks]));
      const staged = new Map(info.entries.map(e => [e.path, e.size]));
      let failed = 0;
      for (const entry of entries) {
        try {
          if (staged.get(entry.path) === entry.file.size) { entry.show(entry.file.size); continue; }
          await sendFile(state.token, entry, known, chunkSize, state);
          entry.show(entry.file.size);
        } catch (error) {
          failed += 1;
          entry.note(`failed: ${error.message}`, true);
        }
      }
      if (failed) {
        resumeNote.className = "notice error";
        resumeNote.textContent = `${failed} file(s) could not be sent. Press Upload to try again; the chunks already sent are kept.`;
        return;
      }
      await api("POST", `/share/${encodeURIComponent(state.token)}/commit`);
      forget();
      for (const entry of entries) entry.note("100% · added");
      resumeNote.className = "notice";
      resumeNote.textContent = `Uploaded ${entries.length} file(s).`;
      input.value = "";
      await refreshListing();
    } catch (error) {
      resumeNote.className = "notice error";
      resumeNote.textContent = `The upload failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });

  announceInterrupted();
}

function chunkLength(size, chunkSize, index) {
  return Math.max(0, Math.min(chunkSize, size - index * chunkSize));
}

function fileIdOf(path, file) {
  // Stable across reloads for the same file at the same path: [A-Za-z0-9._-], at most 128 characters.
  let hash = 0x811c9dc5;
  for (const character of path) {
    hash ^= character.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `f-${hash.toString(16)}-${file.size}-${file.lastModified}`;
}

function sleep(ms) { return new Promise(resolve => setTimeout(resolve, ms)); }

function retryAfter(header) {
  const seconds = Number(header);
  return (Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 30) : 2) * 1000;
}

function messageOf(text, status) {
  try {
    const body = JSON.parse(text);
    if (body && body.error) return body.error;
  } catch { /* not JSON */ }
  return `the server answered ${status}`;
}

async function errorText(response) {
  return messageOf(await response.text(), response.status);
}
