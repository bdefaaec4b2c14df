// The show-once secret: on the page until "Done", the next secret, a sign-out or the key's
// revocation; never stored.

const $ = (id) => document.getElementById(id);

export function showSecret(record) {
  $("secret-name").textContent = record.name;
  $("secret-value").value = record.key;
  $("copy-status").textContent = "";
  const panel = $("secret-panel");
  panel.dataset.keyId = record.id;
  panel.hidden = false;
  panel.focus(); // keyboard and screen reader users land on the warning
}

/** Hide the secret if it is the one of key `id` (a revoked key's secret is no use). */
export function hideSecretOf(id) {
  if ($("secret-panel").dataset.keyId === id) hideSecret();
}

export function hideSecret() {
  $("secret-value").value = "";
  $("secret-name").textContent = "";
  $("secret-panel").dataset.keyId = "";
  $("secret-panel").hidden = true;
}

export async function copySecret() {
  const field = $("secret-value");
  const status = $("copy-status");
  try {
    await navigator.clipboard.writeText(field.value);
    status.textContent = "Copied to the clipboard.";
  } catch {
    // No clipboard access (a plain-http address other than localhost, or refused): select the
    // text so the keyboard shortcut copies it.
    field.focus();
    field.select();
    status.textContent = "Could not copy by itself: the secret is selected, press Ctrl+C (⌘C).";
  }
}

export function bindSecretPanel() {
  $("copy-secret").addEventListener("click", copySecret);
  $("secret-done").addEventListener("click", () => {
    hideSecret();
    $("new-key").focus();
  });
}
