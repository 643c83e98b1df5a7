// The Images page: resumable chunked upload with progress, speed and time left; the list.
"use strict";

(function () {
  const { api, showError, bytes, duration, cell, button } = window.blabs;
  const page = document.getElementById("images-page");
  const form = document.getElementById("upload-form");
  const fileInput = document.getElementById("upload-file");
  const nameInput = document.getElementById("upload-name");
  const resumeBtn = document.getElementById("upload-resume");
  const panel = document.getElementById("upload-panel");
  const bar = document.getElementById("upload-bar");
  const statusText = document.getElementById("upload-status");
  const stats = document.getElementById("upload-stats");
  let current = null; // {upload, file, offset}
  let images = [];

  function setBar(fraction, label) {
    const pct = Math.max(0, Math.min(100, fraction * 100));
    bar.style.width = pct.toFixed(1) + "%";
    bar.setAttribute("aria-valuenow", pct.toFixed(1));
    bar.textContent = label || pct.toFixed(1) + " %";
  }

  // Speed over the last ~5 s of samples: smooth enough to read, quick to follow changes.
  const samples = [];
  function updateStats(sent, size) {
    const now = performance.now();
    samples.push([now, sent]);
    while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
    const [t0, b0] = samples[0];
    const rate = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
    const left = rate > 0 ? (size - sent) / rate : Infinity;
    stats.textContent =
      bytes(sent) + " of " + bytes(size) + " · " + (rate / 1e6).toFixed(1) + " MB/s · " +
      duration(left) + " left";
    page.dataset.speed = rate;
  }

  function suggestName(file) {
    return file.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9 ._()+-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 100);
  }

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (!file) return;
    // An unfinished upload of the same name and size is resumed, not started again.
    const open = images.find((i) => i.upload && i.upload.size === file.size &&
      (i.name === nameInput.value || i.name === suggestName(file)));
    if (open) nameInput.value = open.name;
    else if (!nameInput.value) nameInput.value = suggestName(file);
  });

  // One chunk as one PATCH; XMLHttpRequest because fetch cannot report upload progress.
  function sendChunk(uploadId, blob, offset, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PATCH", page.dataset.api + "uploads/" + uploadId);
      xhr.setRequestHeader("X-XSRFToken", page.dataset.xsrf);
      xhr.setRequestHeader("Upload-Offset", String(offset));
      xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        resolve({ status: xhr.status, body: body, offset: Number(xhr.getResponseHeader("Upload-Offset")) });
      };
      xhr.onerror = () => reject(new Error("network"));
      xhr.ontimeout = () => reject(new Error("network"));
      xhr.send(blob);
    });
  }

  async function serverOffset(uploadId) {
    const r = await fetch(page.dataset.api + "uploads/" + uploadId, {
      method: "HEAD", credentials: "same-origin",
      headers: { "X-XSRFToken": page.dataset.xsrf },
    });
    if (!r.ok) throw new window.blabs.ApiError(r.status, { message: "the upload is gone (HTTP " + r.status + ")" });
    return Number(r.headers.get("Upload-Offset"));
  }

  async function run() {
    const { upload, file } = current;
    const chunk = upload.chunk_size || 16 * 1024 * 1024;
    let offset = await serverOffset(upload.id);
    let failures = 0;
    panel.classList.remove("d-none");
    resumeBtn.classList.add("d-none");
    samples.length = 0;
    while (offset < file.size) {
      statusText.textContent = offset ? "Uploading (resumed at " + bytes(offset) + ")…" : "Uploading…";
      const end = Math.min(file.size, offset + chunk);
      try {
        const r = await sendChunk(upload.id, file.slice(offset, end), offset, (loaded) => {
          setBar((offset + loaded) / file.size);
          updateStats(offset + loaded, file.size);
        });
        if (r.status === 409 && r.body.offset !== undefined) { offset = r.body.offset; continue; }
        if (r.status !== 200) throw new window.blabs.ApiError(r.status, r.body);
        offset = r.offset;
        failures = 0;
      } catch (err) {
        if (err.message !== "network") throw err;
        failures++;
        statusText.textContent = "Connection lost: retrying (" + failures + ")…";
        resumeBtn.classList.remove("d-none");
        if (failures > 8) {
          statusText.textContent = "Connection lost. Press Resume when the network is back.";
          return false;
        }
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 15000)));
        offset = await serverOffset(upload.id);
      }
    }
    setBar(1, "100 %");
    statusText.textContent = "Checking the image…";
    const image = await api("POST", "uploads/" + upload.id + "/finish", {});
    current = null;
    await watch(image.id);
    return true;
  }

  async function watch(imageId) {
    for (;;) {
      const image = await api("GET", "images/" + imageId);
      await refresh();
      if (image.status === "converting") {
        setBar(image.progress || 0, "converting " + ((image.progress || 0) * 100).toFixed(0) + " %");
        statusText.textContent = "Converting " + image.source_format + " to qcow2…";
      } else if (image.status === "ready") {
        setBar(1, "ready");
        statusText.textContent = "Ready: " + image.name;
        stats.textContent = "";
        page.dataset.lastReady = image.name;
        return;
      } else if (image.status === "failed") {
        statusText.textContent = "Failed: " + image.error;
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async function start() {
    showError(null);
    const file = fileInput.files[0];
    if (!file) return;
    const name = nameInput.value.trim();
    const open = images.find((i) => i.name === name && i.upload && i.upload.size === file.size);
    if (open) {
      current = { upload: { ...open.upload }, file };
    } else {
      const created = await api("POST", "uploads", { name: name, size: file.size });
      current = { upload: { ...created.upload, chunk_size: created.chunk_size }, file };
      await refresh();
    }
    await run();
  }

  function guard(fn) {
    return async (event) => {
      if (event) event.preventDefault();
      try {
        await fn();
      } catch (err) {
        showError(err);
        statusText.textContent = "Stopped.";
        await refresh().catch(() => {});
      }
    };
  }

  form.addEventListener("submit", guard(start));
  resumeBtn.addEventListener("click", guard(async () => {
    if (current) await run();
    else await start();
  }));

  async function refresh() {
    images = (await api("GET", "images")).images;
    const body = document.querySelector("#images-table tbody");
    body.replaceChildren();
    for (const image of images) {
      const row = document.createElement("tr");
      row.dataset.name = image.name;
      row.dataset.status = image.status;
      cell(row, image.name);
      let status = image.status;
      if (image.upload) status += " (" + bytes(image.upload.offset) + " of " + bytes(image.upload.size) + ")";
      if (image.status === "converting") status += " " + ((image.progress || 0) * 100).toFixed(0) + " %";
      const st = cell(row, status);
      st.className = "image-status";
      if (image.error) st.title = image.error;
      cell(row, image.format ? (image.source_format !== image.format ? image.source_format + " → " : "") + image.format : "");
      cell(row, bytes(image.virtual_size));
      cell(row, bytes(image.actual_size));
      const sha = cell(row, image.sha256 ? image.sha256.slice(0, 12) + "…" : "");
      sha.title = image.sha256 || "";
      cell(row, (image.uploaded_by || "") + " " + (image.created_at || "").slice(0, 16).replace("T", " "));
      cell(row, image.templates.join(", "));
      const actions = cell(row, "");
      actions.appendChild(button("Delete", "btn-outline-danger", guard(async () => {
        if (!confirm("Delete image " + image.name + "?")) return;
        await api("DELETE", "images/" + image.id);
        await refresh();
      })));
      body.appendChild(row);
    }
  }

  guard(refresh)();
  setInterval(() => {
    if (!current && images.some((i) => i.status === "converting" || i.status === "inspecting")) refresh().catch(() => {});
  }, 3000);
})();
