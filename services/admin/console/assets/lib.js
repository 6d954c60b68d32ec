// @ts-check
// Pure helpers of the console: no DOM, no network (unit-tested in services/admin/test/console-lib.test.ts).

/** The characters of a user id (SPEC §2), in byte order, as Redis compares them. */
export const USER_ID_ALPHABET = '-.0123456789:@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';
export const USER_ID_MAX_LENGTH = 128;
const USER_ID_CHARS = /^[A-Za-z0-9._:@-]*$/;

/**
 * Whether `text` can start a user id.
 * @param {string} text
 */
export function isUserIdPrefix(text) {
  return USER_ID_CHARS.test(text) && text.length <= USER_ID_MAX_LENGTH;
}

/**
 * The cursor from which `GET /v1/users` lists exactly the ids that start with `prefix`: the
 * greatest valid user id sorting before every such id (the API's cursor is exclusive and its
 * order is byte order). Undefined when the list should start at the beginning.
 * @param {string} prefix a user id prefix (see `isUserIdPrefix`)
 * @returns {string | undefined}
 */
export function cursorBefore(prefix) {
  if (!isUserIdPrefix(prefix)) throw new RangeError(`"${prefix}" cannot start a user id`);
  if (prefix === '') return undefined;
  const head = prefix.slice(0, -1);
  const index = USER_ID_ALPHABET.indexOf(prefix.slice(-1));
  // Nothing sorts between `head` and `head` + the smallest character.
  if (index === 0) return head === '' ? undefined : head;
  const largest = USER_ID_ALPHABET[USER_ID_ALPHABET.length - 1] ?? 'z';
  return head + USER_ID_ALPHABET[index - 1] + largest.repeat(USER_ID_MAX_LENGTH - prefix.length);
}

/** @typedef {'live' | 'late' | 'silent'} PodState */

/**
 * A pod's state from the age of its last heartbeat: pods beat every half interval and are
 * reaped once silent for two intervals.
 * @param {number} ageMs
 * @param {number} intervalMs
 * @returns {PodState}
 */
export function podState(ageMs, intervalMs) {
  if (ageMs <= intervalMs) return 'live';
  if (ageMs <= 2 * intervalMs) return 'late';
  return 'silent';
}

/**
 * A duration for people: "850 ms", "12 s", "3 min 5 s", "2 h 10 min", "4 d 3 h".
 * @param {number} ms
 */
export function formatDuration(ms) {
  const value = Math.max(0, Math.round(ms));
  if (value < 1000) return `${value} ms`;
  const s = Math.floor(value / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * @typedef {{ ok: true, value: unknown } | { ok: false, message: string }} Parsed
 */

/**
 * Parses JSON typed by an operator, with a message fit to show when it is not JSON.
 * @param {string} text
 * @returns {Parsed}
 */
export function parseJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, message: `not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** @typedef {'user' | 'users' | 'room' | 'broadcast'} TargetKind */

/**
 * @typedef {object} NotificationForm
 * @property {TargetKind} target
 * @property {string} to user id, comma- or space-separated user ids, or room name
 * @property {string} type
 * @property {string} title
 * @property {string} body
 * @property {string} data JSON object, or empty
 * @property {string} id
 * @property {boolean} persist
 */

/**
 * The `POST /v1/notifications` body for what the form holds, or the first thing to fix. The
 * API validates the rest and explains what it refuses.
 * @param {NotificationForm} form
 * @returns {{ ok: true, job: Record<string, unknown> } | { ok: false, message: string }}
 */
export function notificationJob(form) {
  const to = form.to.trim();
  /** @type {Record<string, unknown>} */
  let target;
  switch (form.target) {
    case 'user':
      if (!to) return { ok: false, message: 'Enter the user id' };
      target = { userId: to };
      break;
    case 'users': {
      const ids = [...new Set(to.split(/[\s,]+/).filter(Boolean))];
      if (ids.length === 0) return { ok: false, message: 'Enter at least one user id' };
      target = { userIds: ids };
      break;
    }
    case 'room':
      if (!to) return { ok: false, message: 'Enter the room name' };
      target = { room: to };
      break;
    case 'broadcast':
      target = { broadcast: true };
      break;
  }
  /** @type {Record<string, unknown>} */
  const job = { to: target, type: form.type.trim() };
  if (form.title.trim()) job.title = form.title.trim();
  if (form.body.trim()) job.body = form.body;
  if (form.data.trim()) {
    const parsed = parseJson(form.data);
    if (!parsed.ok) return { ok: false, message: `Data is ${parsed.message}` };
    if (typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value)) {
      return { ok: false, message: 'Data must be a JSON object, like {"orderId": 42}' };
    }
    job.data = parsed.value;
  }
  if (form.id.trim()) job.id = form.id.trim();
  if (form.target === 'user' || form.target === 'users') job.persist = form.persist;
  return { ok: true, job };
}
