// Settings → API Keys: sign in with the admin key, then list, create, edit, rotate and revoke
// keys through the admin API. Every API error is shown in words next to what caused it.

import { AdminApi, ApiError } from "./api.js";
import { closeDialog, bindDialogs, openKeyAction, openKeyDialog } from "./dialogs.js";
import { clearErrors, keyBody, showError } from "./fields.js";
import { when } from "./format.js";
import { renderKeys } from "./keys-table.js";
import { bindSecretPanel, hideSecret, hideSecretOf, showSecret } from "./secret.js";
import { forgetAdminKey, saveAdminKey, savedAdminKey } from "./session.js";

const $ = (id) => document.getElementById(id);
const REFUSED = "The admin key was refused (it may have changed). Sign in again.";
const page = { api: null, records: [] };

// --- signing in and out ------------------------------------------------------------------------

async function signIn(key) {
  const form = $("sign-in-form");
  if (isBusy(form)) return;
  if (!key) {
    showError(form, { message: "Enter the admin key.", param: "admin_key" });
    return;
  }
  const api = new AdminApi(key);
  const records = await busy(form, () => api.list()).catch((error) => {
    forgetAdminKey();
    showError(form, { message: messageOf(error), param: "admin_key" });
    return null;
  });
  if (records === null) return;
  saveAdminKey(key);
  Object.assign(page, { api, records });
  form.reset();
  showWorkspace(true);
  render();
  $("keys-title").focus();
}

function signOut(message = "") {
  forgetAdminKey();
  Object.assign(page, { api: null, records: [] });
  hideSecret();
  render();
  announce("");
  showWorkspace(false);
  if (message) showError($("sign-in-form"), { message, param: "admin_key" });
  else $("admin-key").focus();
}

function showWorkspace(signedIn) {
  $("sign-in").hidden = signedIn;
  $("workspace").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
}

// --- the list ----------------------------------------------------------------------------------

async function refresh() {
  const slot = $("list-error");
  try {
    page.records = await page.api.list();
    slot.hidden = true;
  } catch (error) {
    if (refused(error)) return;
    slot.textContent = messageOf(error);
    slot.hidden = false;
  }
  render();
}

function render() {
  renderKeys($("keys-body"), page.records, Date.now() / 1000);
  $("keys-table").hidden = page.records.length === 0;
  $("keys-empty").hidden = page.records.length > 0;
}

function recordOf(id) {
  return page.records.find((record) => record.id === id);
}

// --- actions -----------------------------------------------------------------------------------

async function saveKey(form) {
  const id = form.dataset.keyId;
  const record = id
    ? await page.api.update(id, keyBody(form))
    : await page.api.create(keyBody(form));
  closeDialog(form);
  if (!id) showSecret(record);
  await refresh();
  announce(`${id ? "Saved" : "Created"} key “${record.name}”.`);
  if (id) focusAction(id, "edit");
}

async function rotateKey(form) {
  const grace = Number(form.elements.namedItem("grace_seconds").value);
  const record = await page.api.rotate(form.dataset.keyId, grace);
  closeDialog(form);
  showSecret(record);
  await refresh();
  const old = record.rotation_grace_until
    ? `works until ${when(record.rotation_grace_until, "")}`
    : "no longer works";
  announce(`Rotated key “${record.name}”: the old secret ${old}.`);
}

async function revokeKey(form) {
  const record = await page.api.revoke(form.dataset.keyId);
  closeDialog(form);
  hideSecretOf(record.id);
  await refresh();
  announce(`Revoked key “${record.name}”: it is refused from now on.`);
  $("status").focus();
}

const ACTIONS = {
  edit: (record) => openKeyDialog(record),
  rotate: (record) => openKeyAction("rotate", record),
  revoke: (record) => openKeyAction("revoke", record),
};

function onRowAction(event) {
  const button = event.target.closest("button[data-action]");
  const record = button && recordOf(button.dataset.keyId);
  if (record) ACTIONS[button.dataset.action](record);
}

// --- helpers -----------------------------------------------------------------------------------

/** Submit handler for a form whose `action` calls the API; its errors land on the form. */
function submitWith(action) {
  return async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    if (isBusy(form)) return;
    try {
      await busy(form, () => action(form));
    } catch (error) {
      if (!refused(error)) showError(form, { message: messageOf(error), param: error.param });
    }
  };
}

/** Run `work` with the form marked busy, its old errors cleared. */
async function busy(form, work) {
  form.setAttribute("aria-busy", "true");
  clearErrors(form);
  try {
    return await work();
  } finally {
    form.removeAttribute("aria-busy");
  }
}

/** A 401 after sign-in means the admin key changed: sign out and say so. */
function refused(error) {
  if (!(error instanceof ApiError) || error.status !== 401) return false;
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  signOut(REFUSED);
  return true;
}

/** A request of this form is under way: a double click sends one request, not two. */
function isBusy(form) {
  return form.getAttribute("aria-busy") === "true";
}

function messageOf(error) {
  if (error instanceof ApiError) return error.message;
  console.error(error); // a bug in this page, not an answer of the API
  return "Something went wrong on this page; reload it and try again.";
}

function announce(text) {
  $("status").textContent = text;
}

function focusAction(id, action) {
  const selector = `button[data-action="${action}"][data-key-id="${CSS.escape(id)}"]`;
  document.querySelector(selector)?.focus();
}

// --- wiring ------------------------------------------------------------------------------------

function bind() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("admin-key").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", refresh);
  $("new-key").addEventListener("click", () => openKeyDialog());
  $("keys-body").addEventListener("click", onRowAction);
  $("key-form").addEventListener("submit", submitWith(saveKey));
  $("rotate-form").addEventListener("submit", submitWith(rotateKey));
  $("revoke-form").addEventListener("submit", submitWith(revokeKey));
  bindDialogs();
  bindSecretPanel();
}

bind();
const saved = savedAdminKey();
if (saved) signIn(saved);
