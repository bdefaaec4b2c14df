// How a key record (the admin API's JSON) reads on the page.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const count = new Intl.NumberFormat();

/** A unix time as text, or `none` when there is no time. */
export function when(seconds, none) {
  return seconds == null ? none : dateTime.format(new Date(seconds * 1000));
}

/** "Active", "Expired" or "Revoked" at `now` (unix seconds). */
export function stateOf(record, now) {
  if (record.state === "revoked") return "Revoked";
  if (record.expires_at != null && record.expires_at <= now) return "Expired";
  return "Active";
}

export function modelsText(models) {
  return models.includes("*") ? "All models" : models.join(", ");
}

export function limitsText(limits) {
  const parts = [];
  if (limits.rpm != null) parts.push(`${count.format(limits.rpm)} requests/min`);
  if (limits.tpm != null) parts.push(`${count.format(limits.tpm)} tokens/min`);
  if (limits.concurrency != null) parts.push(`${count.format(limits.concurrency)} at once`);
  return parts.length ? parts.join(", ") : "No limits";
}

/** A unix time as the value of an <input type="datetime-local"> (local time, to the minute). */
export function toLocalInput(seconds) {
  if (seconds == null) return "";
  const date = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
