// The /v1 API with the signed-in key. The key lives in sessionStorage only: never in a
// cookie, local storage or a URL.

const KEY = 'hookd.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** An error answer of the API: `code` and `message` as it sent them. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the parsed body (or null), rejects with an ApiError. */
export async function call(method, path, body, key) {
  const headers = {Authorization: 'Bearer ' + (key ?? apiKey() ?? '')};
  const init = {method, headers, cache: 'no-store', credentials: 'omit'};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'NETWORK_ERROR', 'hookd did not answer: ' + e.message);
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!resp.ok) {
    const err = json && json.error;
    if (err && typeof err.code === 'string') {
      throw new ApiError(resp.status, err.code, String(err.message ?? ''));
    }
    throw new ApiError(resp.status, 'HTTP_' + resp.status, text.slice(0, 200));
  }
  return json;
}

/** Builds `path?k=v&...`, leaving out empty values. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? path + '?' + s : path;
}
