// Shared by the blabs admin pages: API calls with the page's XSRF token, errors, formats.
// No framework and no CDN: the service serves this file itself.
"use strict";

window.blabs = (function () {
  function root() {
    return document.querySelector("[data-api]");
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body.message || "HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const el = root();
    const opts = {
      method: method,
      credentials: "same-origin",
      headers: { "X-XSRFToken": el.dataset.xsrf },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(el.dataset.api + path, opts);
    const text = await r.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = { message: text.slice(0, 300) };
    }
    if (!r.ok) throw new ApiError(r.status, data || {});
    return data;
  }

  function showError(err) {
    const box = document.getElementById("page-error");
    if (!err) {
      box.classList.add("d-none");
      return;
    }
    box.textContent = err.body && err.body.field
      ? err.message + " (field: " + err.body.field + ")"
      : err.message;
    box.classList.remove("d-none");
  }

  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }

  function duration(seconds) {
    if (!isFinite(seconds)) return "…";
    seconds = Math.round(seconds);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function button(label, cls, onclick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-sm " + cls;
    b.textContent = label;
    b.addEventListener("click", onclick);
    return b;
  }

  // Read a form into a JSON object, typed by each input's data-type.
  function formData(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") out[el.name] = el.checked;
      else if (el.dataset.type === "int") out[el.name] = el.value === "" ? null : Number(el.value);
      else if (el.dataset.type === "int-or-null")
        out[el.name] = el.value === "" ? null : Number(el.value);
      else out[el.name] = el.value;
    }
    return out;
  }

  function markField(form, field) {
    for (const el of form.elements) el.classList.remove("is-invalid");
    if (field && form.elements[field]) form.elements[field].classList.add("is-invalid");
  }

  return { api, ApiError, showError, bytes, duration, cell, button, formData, markField, root };
})();
