// Every call to /v1 goes through here: the key from session storage, JSON in and out,
// the contract's error body turned into an ApiError with its details.

const KEY = "audience.key";

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || [];
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${key.get()}`, ...extra };
}

export async function raw(method, path, { body, signal, form } = {}) {
  const init = { method, headers: headers(), signal };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      /* not JSON */
    }
    if (response.status === 401 && key.get()) {
      // the key was revoked (or the session's key is wrong): back to the key form
      window.dispatchEvent(new CustomEvent("audience:unauthorized", { detail: payload }));
    }
    throw new ApiError(response.status, payload);
  }
  return response;
}

export async function call(method, path, options) {
  const response = await raw(method, path, options);
  return response.status === 204 ? null : response.json();
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options = {}) => call("POST", path, { ...options, body });
export const put = (path, body, options = {}) => call("PUT", path, { ...options, body });

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// A job's server-sent events, read with fetch (EventSource cannot send Authorization).
export async function watchJob(id, onJob, signal) {
  const response = await raw("GET", `/v1/jobs/${id}/events`, { signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    for (let i; (i = buf.indexOf("\n\n")) >= 0; buf = buf.slice(i + 2)) {
      const data = buf
        .slice(0, i)
        .split("\n")
        .find((l) => l.startsWith("data: "));
      if (data) onJob(JSON.parse(data.slice(6)));
    }
  }
}

// A download that needs the key: fetch it, then hand the browser a blob.
export async function download(method, path, body, fallbackName) {
  const response = await raw(method, path, { body });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const name = match ? match[1] : fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name, size: blob.size, blob };
}
