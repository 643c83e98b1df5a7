// The Settings page: the live limits.
"use strict";

(function () {
  const { api, showError, formData, markField } = window.blabs;
  const form = document.getElementById("settings-form");
  const ok = document.getElementById("page-ok");

  function fill(s) {
    for (const key of Object.keys(s.bounds)) {  // every live setting, as the API lists them
      form.elements[key].value = s[key];
    }
    document.getElementById("settings-updated").textContent = s.updated_by
      ? "Last changed by " + s.updated_by + " at " + String(s.updated_at).slice(0, 16).replace("T", " ")
      : "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(null);
    ok.classList.add("d-none");
    markField(form, null);
    try {
      fill(await api("PATCH", "settings", formData(form)));
      ok.classList.remove("d-none");
    } catch (err) {
      showError(err);
      markField(form, err.body && err.body.field);
    }
  });
  api("GET", "settings").then(fill, showError);
})();
