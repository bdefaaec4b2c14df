// The admin key lives in this tab's sessionStorage (never a cookie, never a URL): it survives a
// reload and is gone when the tab closes. Where storage is refused, it lives in memory only.

const STORAGE_KEY = "switchyard.adminKey";
let memory = null;

export function savedAdminKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return memory;
  }
}

export function saveAdminKey(key) {
  memory = key;
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // memory holds it
  }
}

export function forgetAdminKey() {
  memory = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing was stored
  }
}
