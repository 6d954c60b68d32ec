// @ts-check
// Calls to this admin service: the /v1 API and the console's session routes. The session cookie
// (HttpOnly, set by the server) authenticates them; state-changing calls carry the CSRF token.

/**
 * @typedef {object} Session
 * @property {string} principal
 * @property {number} expiresAt
 * @property {string} csrfToken
 * @property {number} heartbeatIntervalMs
 */

/** An error answer of the API: `{ error: { code, message, details? } }` and its status. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {unknown} [details]
   */
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Kept in memory only: the page asks the server again after a reload. */
let csrfToken = '';

/** @param {string} token */
export function setCsrfToken(token) {
  csrfToken = token;
}

/** @type {(error: ApiError) => void} */
let onUnauthorized = () => {};

/** Called when a call finds the session gone (401), e.g. after it expired. */
export function whenUnauthorized(/** @type {(error: ApiError) => void} */ handler) {
  onUnauthorized = handler;
}

/**
 * @param {unknown} json
 * @returns {{ code?: unknown, message?: unknown, details?: unknown } | undefined}
 */
function errorOf(json) {
  if (typeof json !== 'object' || json === null || !('error' in json)) return undefined;
  const error = json.error;
  return typeof error === 'object' && error !== null ? error : undefined;
}

/**
 * Calls the admin service and resolves with the JSON answer (undefined for 204).
 * @param {'GET' | 'POST' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{ quiet401?: boolean }} [options]
 * @returns {Promise<unknown>}
 */
export async function call(method, path, body, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res;
  try {
    res = await window.fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'The admin service did not answer: check the connection');
  }
  if (res.status === 204) return undefined;
  const text = await res.text();
  /** @type {unknown} */
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.ok) return json;
  const error = errorOf(json);
  const failure = new ApiError(
    res.status,
    typeof error?.code === 'string' ? error.code : `HTTP_${res.status}`,
    typeof error?.message === 'string' ? error.message : `HTTP ${res.status}`,
    error?.details,
  );
  if (res.status === 401 && !options.quiet401) onUnauthorized(failure);
  throw failure;
}

/** A path segment: user ids and room names are URL-encoded in paths. */
const segment = encodeURIComponent;

/**
 * @param {Record<string, string | number | undefined>} params
 * @returns {string} `?a=1&b=2` without the undefined ones, or ''
 */
function query(params) {
  const search = new window.URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

// ---- the answers of the /v1 API (services/admin/src/schemas.ts) ----

/** @typedef {{ waiting: number, active: number, delayed: number, failed: number, completed: number }} QueueCounts */
/** @typedef {{ id: string, connections: number, startedAt: number, lastHeartbeatAt: number }} Pod */
/** @typedef {{ pods: Pod[], connections: number, usersOnline: number, rooms: number, queue: QueueCounts }} Stats */
/** @typedef {{ userId: string, name?: string, status: string }} Member */
/** @typedef {{ users: Member[], nextCursor?: string }} UsersPage */
/**
 * @typedef {object} User
 * @property {string} userId
 * @property {string} [name]
 * @property {boolean} online
 * @property {string} status
 * @property {string} [text]
 * @property {number} [lastSeen]
 * @property {{ id: string, pod: string, connectedAt: number }[]} sockets
 * @property {string[]} rooms
 */
/** @typedef {{ rooms: { room: string, members: number }[], nextCursor?: string }} RoomsPage */
/** @typedef {{ room: string, members: number, users: Member[], nextCursor?: string }} Room */
/**
 * @typedef {object} FailedJob
 * @property {string} id
 * @property {string} name
 * @property {string} failedReason
 * @property {number} attemptsMade
 * @property {number} timestamp
 * @property {number} [finishedOn]
 * @property {string} [type]
 * @property {string} [target]
 */
/** @typedef {{ counts: QueueCounts, failed: FailedJob[] }} QueueReport */

/** @returns {Promise<Stats>} */
export const stats = () => /** @type {Promise<Stats>} */ (call('GET', '/v1/stats'));

/**
 * @param {string | undefined} cursor
 * @param {number} limit
 * @returns {Promise<UsersPage>}
 */
export const users = (cursor, limit) => /** @type {Promise<UsersPage>} */ (call('GET', `/v1/users${query({ cursor, limit })}`));

/** @param {string} userId @returns {Promise<User>} */
export const user = (userId) => /** @type {Promise<User>} */ (call('GET', `/v1/users/${segment(userId)}`));

/** @param {string} userId @returns {Promise<{ userId: string, sockets: number }>} */
export const disconnect = (userId) =>
  /** @type {Promise<{ userId: string, sockets: number }>} */ (call('POST', `/v1/users/${segment(userId)}/disconnect`));

/**
 * @param {string} prefix
 * @param {string | undefined} cursor
 * @returns {Promise<RoomsPage>}
 */
export const rooms = (prefix, cursor) => /** @type {Promise<RoomsPage>} */ (call('GET', `/v1/rooms${query({ prefix, cursor, limit: 50 })}`));

/**
 * @param {string} name
 * @param {string | undefined} cursor
 * @returns {Promise<Room>}
 */
export const room = (name, cursor) => /** @type {Promise<Room>} */ (call('GET', `/v1/rooms/${segment(name)}${query({ cursor, limit: 50 })}`));

/**
 * @param {string} name
 * @param {{ type?: string, data: unknown }} message
 * @returns {Promise<{ id: string, ts: number }>}
 */
export const publish = (name, message) =>
  /** @type {Promise<{ id: string, ts: number }>} */ (call('POST', `/v1/rooms/${segment(name)}/messages`, message));

/** @param {Record<string, unknown>} job @returns {Promise<{ id: string }>} */
export const notify = (job) => /** @type {Promise<{ id: string }>} */ (call('POST', '/v1/notifications', job));

/** @returns {Promise<QueueReport>} */
export const queue = () => /** @type {Promise<QueueReport>} */ (call('GET', '/v1/queues/notifications?limit=50'));

/** @param {string} id @returns {Promise<{ id: string }>} */
export const retry = (id) => /** @type {Promise<{ id: string }>} */ (call('POST', `/v1/queues/notifications/jobs/${segment(id)}/retry`));

/** @returns {Promise<Session | undefined>} the current session, or undefined when signed out */
export async function currentSession() {
  try {
    return /** @type {Session} */ (await call('GET', '/console/session', undefined, { quiet401: true }));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return undefined;
    throw err;
  }
}

/**
 * @param {string} credential
 * @returns {Promise<Session>}
 */
export function signIn(credential) {
  return /** @type {Promise<Session>} */ (call('POST', '/console/session', { credential }, { quiet401: true }));
}

export async function signOut() {
  await call('DELETE', '/console/session', undefined, { quiet401: true });
  csrfToken = '';
}
