// The Templates page: list with enable/disable, a form to create or edit.
"use strict";

(function () {
  const { api, showError, cell, button, formData, markField } = window.blabs;
  const form = document.getElementById("template-form");
  const title = document.getElementById("form-title");
  const save = document.getElementById("template-save");
  let editing = null;

  function guard(fn) {
    return async (event) => {
      if (event) event.preventDefault();
      try {
        showError(null);
        markField(form, null);
        await fn();
      } catch (err) {
        showError(err);
        markField(form, err.body && err.body.field);
      }
    };
  }

  async function loadImages() {
    let images = [];
    try {
      images = (await api("GET", "images")).images;
    } catch (err) { /* instructors without image rights still see the names in the list */ }
    const select = form.elements.image_id;
    select.replaceChildren();
    for (const image of images.filter((i) => i.status === "ready")) {
      const opt = document.createElement("option");
      opt.value = image.id;
      opt.textContent = image.name;
      select.appendChild(opt);
    }
  }

  function reset() {
    editing = null;
    form.reset();
    form.elements.slug.disabled = false;
    title.textContent = "New template";
    save.textContent = "Create";
  }

  function edit(t) {
    editing = t.slug;
    for (const el of form.elements) {
      if (!el.name || !(el.name in t)) continue;
      if (el.type === "checkbox") el.checked = t[el.name];
      else el.value = t[el.name] === null ? "" : t[el.name];
    }
    form.elements.slug.disabled = true;
    title.textContent = "Edit " + t.slug;
    save.textContent = "Save";
  }

  async function refresh() {
    const { templates } = await api("GET", "templates");
    const body = document.querySelector("#templates-table tbody");
    body.replaceChildren();
    for (const t of templates) {
      const row = document.createElement("tr");
      row.dataset.slug = t.slug;
      cell(row, t.slug);
      cell(row, t.title);
      cell(row, t.image + (t.image_ready ? "" : " (not ready)"));
      cell(row, t.cpus + " CPU · " + t.memory_mib + " MiB · " + t.firmware + " · " + t.disk_bus + " · " + t.network);
      cell(row, t.enabled ? "yes" : "no").className = "template-enabled";
      const instant = cell(row, "…");
      instant.className = "template-instant";
      const actions = cell(row, "");
      readyState(t, instant, actions);
      actions.appendChild(button(t.enabled ? "Disable" : "Enable", "btn-outline-secondary me-1",
        guard(async () => {
          await api("POST", "templates/" + t.slug + (t.enabled ? "/disable" : "/enable"));
          await refresh();
        })));
      actions.appendChild(button("Edit", "btn-outline-primary me-1", () => edit(t)));
      actions.appendChild(button("Delete", "btn-outline-danger", guard(async () => {
        if (!confirm("Delete template " + t.slug + "?")) return;
        await api("DELETE", "templates/" + t.slug);
        await refresh();
      })));
      body.appendChild(row);
    }
  }

  // Instant start: "instant start ready", or why not; Prepare opens a preparation lab (the
  // hub's spawn page), "Save as ready state" asks that running lab to save its VM state.
  async function readyState(t, where, actions) {
    let state;
    try {
      state = await api("GET", "templates/" + t.slug + "/ready-state");
    } catch (err) {
      where.textContent = "";
      return;
    }
    const prep = state.preparation || {};
    where.textContent = state.instant_start ? "instant start ready" : "cold boot: " + state.reason;
    if (prep.stage === "save-failed" || prep.stage === "saving-state") {
      where.textContent += " · " + prep.message;
    }
    actions.appendChild(button("Prepare", "btn-outline-success me-1", guard(async () => {
      const { url } = await api("POST", "templates/" + t.slug + "/prepare");
      window.open(url, "_blank");
    })));
    if (prep.stage === "console-ready" || prep.stage === "save-failed") {
      actions.appendChild(button("Save as ready state", "btn-success me-1", guard(async () => {
        await api("POST", "templates/" + t.slug + "/ready-state");
        where.textContent = "saving…";
        setTimeout(() => guard(refresh)(), 3000);
      })));
    }
  }

  form.addEventListener("submit", guard(async () => {
    const data = formData(form);
    if (editing) {
      delete data.slug;
      await api("PATCH", "templates/" + editing, data);
    } else {
      await api("POST", "templates", data);
    }
    reset();
    await refresh();
  }));
  document.getElementById("template-cancel").addEventListener("click", reset);
  guard(async () => { await loadImages(); await refresh(); })();
})();
