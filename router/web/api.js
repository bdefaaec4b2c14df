// The admin API (/admin/keys), called with the admin key as a Bearer token: never in a URL.

const UNREACHABLE = "The router could not be reached. Check that it is running, then try again.";

/** An error answer of the admin API: OpenAI's error JSON (message, type, param, code). */
export class ApiError extends Error {
  constructor(status, { message, param = null, code = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

export class AdminApi {
  #key;

  constructor(adminKey) {
    this.#key = adminKey;
  }

  list() {
    return this.#call("GET", "/admin/keys").then((body) => body.data);
  }

  create(fields) {
    return this.#call("POST", "/admin/keys", fields);
  }

  update(id, fields) {
    return this.#call("PATCH", keyPath(id), fields);
  }

  rotate(id, graceSeconds) {
    return this.#call("POST", `${keyPath(id)}/rotate`, { grace_seconds: graceSeconds });
  }

  revoke(id) {
    return this.#call("DELETE", keyPath(id));
  }

  async #call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.#key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        redirect: "error",
      });
    } catch {
      throw new ApiError(0, { message: UNREACHABLE });
    }
    const answer = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, errorOf(response, answer));
    return answer;
  }
}

function keyPath(id) {
  return `/admin/keys/${encodeURIComponent(id)}`;
}

function errorOf(response, answer) {
  const error = answer?.error;
  if (error && typeof error.message === "string") return error;
  return { message: `The router answered ${response.status} ${response.statusText}.`.trim() };
}
