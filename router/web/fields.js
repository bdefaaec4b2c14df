// Forms to API bodies, and API errors back onto the forms: an error whose `param` names a
// field is shown under that field; any other is shown above the form's buttons.

/** The create/edit body of the key form. The API checks every value; this only converts. */
export function keyBody(form) {
  const value = (name) => form.elements.namedItem(name).value.trim();
  return {
    name: value("name"),
    models: value("models").split(/[\s,]+/).filter(Boolean),
    limits: {
      rpm: limit(value("limits.rpm")),
      tpm: limit(value("limits.tpm")),
      concurrency: limit(value("limits.concurrency")),
    },
    expires_at: expiry(value("expires_at")),
    priority: value("priority"),
  };
}

function limit(text) {
  if (text === "") return null;
  // A number goes as a number (the API refuses 1.5 or -1 in words); anything else as typed,
  // and the API says what it expected.
  return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
}

function expiry(text) {
  return text === "" ? null : Math.floor(new Date(text).getTime() / 1000);
}

/** Show `error` (an ApiError) next to the field it names, else as the form's error. */
export function showError(form, error) {
  clearErrors(form);
  const control = controlFor(form, error.param);
  if (control === null) {
    const slot = form.querySelector(".form-error");
    slot.textContent = error.message;
    slot.hidden = false;
    return;
  }
  const slot = document.getElementById(`${control.id}-error`);
  slot.textContent = error.message;
  slot.hidden = false;
  control.setAttribute("aria-invalid", "true");
  control.focus();
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
  }
}

function controlFor(form, param) {
  if (!param) return null;
  const name = param.replace(/\[\d+\]$/, ""); // "models[1]" is the models field
  const control = form.elements.namedItem(name);
  return control instanceof HTMLElement ? control : null;
}
