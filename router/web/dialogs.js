// The three dialogs: the key form (create or edit), rotate, and revoke. Native <dialog>: modal,
// focus kept inside, Escape closes, focus returns to the button that opened it.

import { clearErrors } from "./fields.js";
import { toLocalInput } from "./format.js";

const $ = (id) => document.getElementById(id);

/** Open the key form: empty for a new key, or filled with `record` to edit it. */
export function openKeyDialog(record = null) {
  const form = $("key-form");
  form.reset();
  form.dataset.keyId = record?.id ?? "";
  $("key-dialog-title").textContent = record ? `Edit key “${record.name}”` : "Create a key";
  $("key-submit").textContent = record ? "Save changes" : "Create key";
  const field = (name) => form.elements.namedItem(name);
  field("name").value = record?.name ?? "";
  field("models").value = (record?.models ?? ["*"]).join(", ");
  for (const limit of ["rpm", "tpm", "concurrency"]) {
    field(`limits.${limit}`).value = record?.limits[limit] ?? "";
  }
  field("expires_at").value = toLocalInput(record?.expires_at);
  field("priority").value = record?.priority ?? "default";
  open($("key-dialog"));
}

/** Open the rotate or revoke dialog (`which`) for `record`. */
export function openKeyAction(which, record) {
  const dialog = $(`${which}-dialog`);
  const form = dialog.querySelector("form");
  form.reset();
  form.dataset.keyId = record.id;
  dialog.querySelector("[data-key-name]").textContent = record.name;
  open(dialog);
}

export function closeDialog(form) {
  form.closest("dialog").close();
}

export function bindDialogs() {
  for (const dialog of document.querySelectorAll("dialog")) {
    dialog.addEventListener("click", (event) => {
      if (event.target.closest("[data-close]")) dialog.close();
    });
    dialog.addEventListener("close", () => clearErrors(dialog.querySelector("form")));
  }
}

function open(dialog) {
  clearErrors(dialog.querySelector("form"));
  dialog.showModal();
}
