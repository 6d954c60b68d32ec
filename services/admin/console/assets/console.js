// @ts-check
// The Switchboard operator console: plain ES modules on the admin's own /v1 API.
import * as api from './api.js';
import { ApiError } from './api.js';
import { cursorBefore, formatDuration, isUserIdPrefix, notificationJob, parseJson, podState } from './lib.js';

const OVERVIEW_REFRESH_MS = 2000;
const QUEUE_REFRESH_MS = 5000;
const USERS_PAGE = 100;
const VIEWS = /** @type {const} */ (['overview', 'users', 'rooms', 'notifications', 'queue']);
/** @typedef {(typeof VIEWS)[number]} ViewName */

// ---------- DOM helpers ----------

/** @param {string} id */
function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node;
}

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function typed(id, type) {
  const node = $(id);
  if (!(node instanceof type)) throw new Error(`#${id} is not a ${type.name}`);
  return node;
}
const input = (/** @type {string} */ id) => typed(id, window.HTMLInputElement);
const textarea = (/** @type {string} */ id) => typed(id, window.HTMLTextAreaElement);
const button = (/** @type {string} */ id) => typed(id, window.HTMLButtonElement);
const form = (/** @type {string} */ id) => typed(id, window.HTMLFormElement);

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {...(Node | string)} children
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'className') node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** @param {number} ms */
function time(ms) {
  const date = new Date(ms);
  return el('time', { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString());
}

/** @param {string} text */
function setText(/** @type {string} */ id, text) {
  $(id).textContent = text;
}

/**
 * Replaces a table's body with rows, or one row saying there is nothing.
 * @param {string} tableId
 * @param {HTMLElement[]} rows
 * @param {string} empty
 */
function fillTable(tableId, rows, empty) {
  const table = typed(tableId, window.HTMLTableElement);
  const body = table.tBodies[0];
  if (!body) return;
  const columns = table.tHead?.rows[0]?.cells.length ?? 1;
  body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: String(columns), className: 'empty' }, empty))]));
}

/** @param {ViewName} view @param {string} [param] */
const href = (view, param) => `#${view}${param === undefined ? '' : `/${encodeURIComponent(param)}`}`;

const count = (/** @type {number} */ n) => n.toLocaleString();

// ---------- errors ----------

/**
 * Shows what went wrong: in `target` when given, else in the banner. A 401 has already sent
 * the page back to the sign-in.
 * @param {unknown} err
 * @param {string} [target]
 */
function report(err, target) {
  if (err instanceof ApiError && err.status === 401) return;
  const message =
    err instanceof ApiError
      ? err.status === 503
        ? `Unavailable: ${err.message}`
        : `${err.message}${detailsText(err.details)}`
      : err instanceof Error
        ? err.message
        : String(err);
  if (target) setText(target, message);
  else showBanner(message);
}

/** @param {unknown} details */
function detailsText(details) {
  if (!Array.isArray(details) || details.length < 2) return '';
  return ` (${details.length} problems)`;
}

/** @param {string} message */
function showBanner(message) {
  const banner = $('banner');
  banner.textContent = message;
  banner.hidden = false;
}

function clearBanner() {
  $('banner').hidden = true;
}

// ---------- session ----------

/** @type {api.Session | undefined} */
let session;
/** @type {number | undefined} */
let expiryTimer;

/** @param {string} [message] */
function showSignIn(message = '') {
  session = undefined;
  api.setCsrfToken('');
  window.clearTimeout(expiryTimer);
  stopTimers();
  for (const view of VIEWS) $(`view-${view}`).hidden = true;
  $('nav').hidden = true;
  $('who').hidden = true;
  clearBanner();
  $('sign-in').hidden = false;
  setText('sign-in-error', message);
  input('credential').focus();
}

/** @param {api.Session} s */
function signedIn(s) {
  session = s;
  api.setCsrfToken(s.csrfToken);
  setText('principal', s.principal);
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  window.clearTimeout(expiryTimer);
  expiryTimer = window.setTimeout(() => showSignIn('Your session has ended: sign in again.'), Math.max(0, s.expiresAt - Date.now()));
  route(true);
}

api.whenUnauthorized(() => showSignIn('Your session has ended: sign in again.'));

form('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const credential = input('credential');
  setText('sign-in-error', '');
  try {
    const s = await api.signIn(credential.value.trim());
    credential.value = '';
    signedIn(s);
  } catch (err) {
    setText('sign-in-error', err instanceof Error ? err.message : String(err));
    credential.select();
  }
});

button('sign-out').addEventListener('click', async () => {
  try {
    await api.signOut();
    showSignIn('Signed out.');
  } catch (err) {
    report(err);
  }
});

// ---------- navigation ----------

/** @type {number[]} */
let timers = [];
function stopTimers() {
  for (const t of timers) window.clearTimeout(t);
  timers = [];
}

/**
 * Runs `task` now and then every `everyMs` while this view is shown (skipping while the tab is
 * hidden).
 * @param {() => Promise<void>} task
 * @param {number} everyMs
 */
function poll(task, everyMs) {
  const tick = async () => {
    if (document.visibilityState !== 'hidden') await task();
    timers.push(window.setTimeout(tick, everyMs));
  };
  void tick();
}

/** @type {ViewName} */
let currentView = 'overview';

/** @param {boolean} [first] */
function route(first = false) {
  if (!session) return;
  const hash = window.location.hash.slice(1);
  const slash = hash.indexOf('/');
  const name = slash < 0 ? hash : hash.slice(0, slash);
  const view = /** @type {ViewName} */ (VIEWS.find((v) => v === name) ?? 'overview');
  let param;
  try {
    param = slash < 0 ? undefined : decodeURIComponent(hash.slice(slash + 1));
  } catch {
    param = undefined;
  }
  stopTimers();
  clearBanner();
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const link of $('nav').querySelectorAll('a')) {
    if (link.getAttribute('href') === `#${view}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const changed = view !== currentView;
  currentView = view;
  enter[view](param);
  if (first || changed || param === undefined) $(`${view}-title`).focus();
}

window.addEventListener('hashchange', () => route());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && session) route();
});

// ---------- overview ----------

async function refreshOverview() {
  try {
    const s = await api.stats();
    clearBanner();
    setText('t-connections', count(s.connections));
    setText('t-users', count(s.usersOnline));
    setText('t-rooms', count(s.rooms));
    setText('t-pods', count(s.pods.length));
    for (const [state, value] of Object.entries(s.queue)) setText(`q-${state}`, count(value));
    const interval = session?.heartbeatIntervalMs ?? 5000;
    const now = Date.now();
    const rows = [...s.pods]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((pod) => {
        const age = Math.max(0, now - pod.lastHeartbeatAt);
        const state = podState(age, interval);
        return el(
          'tr',
          { 'data-pod': pod.id },
          el('td', { className: 'mono' }, pod.id),
          el('td', { className: 'num' }, count(pod.connections)),
          el('td', {}, time(pod.startedAt), el('span', { className: 'muted' }, ` (up ${formatDuration(now - pod.startedAt)})`)),
          el('td', { className: 'num' }, formatDuration(age)),
          el('td', {}, el('span', { className: `state ${state}` }, state)),
        );
      });
    fillTable('pods', rows, 'No gateway pod is registered');
    setText(
      'pods-legend',
      `live: heartbeat within ${formatDuration(interval)}; late: missed one; silent: none for ${formatDuration(2 * interval)}, ` +
        'about to be reaped by the other pods.',
    );
    setText('overview-updated', `Updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    report(err);
  }
}

// ---------- users ----------

const usersState = { prefix: '', next: /** @type {string | undefined} */ (undefined) };

/** @param {api.Member} m */
function memberRow(m) {
  return el(
    'tr',
    {},
    el('td', {}, el('a', { href: href('users', m.userId), className: 'mono' }, m.userId)),
    el('td', {}, m.name ?? ''),
    el('td', {}, m.status),
  );
}

/**
 * Loads a page of online users whose id starts with the prefix, from `cursor`.
 * @param {string | undefined} cursor
 * @param {boolean} append
 */
async function loadUsers(cursor, append) {
  const { prefix } = usersState;
  setText('users-error', '');
  try {
    const page = await api.users(cursor, USERS_PAGE);
    const matching = page.users.filter((u) => u.userId.startsWith(prefix));
    // Ids come in order: the first one past the prefix ends the search.
    const done = matching.length < page.users.length || page.nextCursor === undefined;
    usersState.next = done ? undefined : page.nextCursor;
    const table = typed('users-table', window.HTMLTableElement);
    const rows = matching.map(memberRow);
    if (append && table.tBodies[0]) table.tBodies[0].append(...rows);
    else fillTable('users-table', rows, prefix ? `No online user id starts with “${prefix}”` : 'Nobody is online');
    setText('users-caption', prefix ? `Online users whose id starts with “${prefix}”` : 'Online users');
    button('users-next').hidden = usersState.next === undefined;
    if (!append && prefix && matching.length === 0) await offerOffline(prefix);
  } catch (err) {
    report(err, 'users-error');
  }
}

/** A user who is not online may still be remembered (status, last seen). @param {string} userId */
async function offerOffline(userId) {
  try {
    const u = await api.user(userId);
    const seen = u.lastSeen ? `, last seen ${new Date(u.lastSeen).toLocaleString()}` : '';
    $('users-error').replaceChildren(el('a', { href: href('users', userId) }, `${userId} is offline${seen}`));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) report(err, 'users-error');
  }
}

form('users-search').addEventListener('submit', (event) => {
  event.preventDefault();
  const prefix = input('users-prefix').value.trim();
  if (!isUserIdPrefix(prefix)) {
    setText('users-error', 'A user id has at most 128 characters of A–Z a–z 0–9 . _ : @ -');
    return;
  }
  usersState.prefix = prefix;
  void loadUsers(cursorBefore(prefix), false);
});
button('users-next').addEventListener('click', () => void loadUsers(usersState.next, true));

/** @type {string | undefined} */
let shownUser;

/** @param {string} userId @param {boolean} [focus] */
async function showUser(userId, focus = true) {
  shownUser = userId;
  const detail = $('user-detail');
  detail.hidden = false;
  setText('user-title', userId);
  setText('user-result', '');
  try {
    const u = await api.user(userId);
    if (shownUser !== userId) return;
    setText('user-title', u.name ? `${u.name} (${u.userId})` : u.userId);
    setText('user-online', u.online ? `yes, ${u.sockets.length} socket${u.sockets.length === 1 ? '' : 's'}` : 'no');
    setText('user-status', u.text ? `${u.status}: ${u.text}` : u.status);
    $('user-seen').replaceChildren(u.lastSeen ? time(u.lastSeen) : '–');
    button('user-disconnect').disabled = !u.online;
    fillTable(
      'user-sockets',
      u.sockets.map((s) => el('tr', {}, el('td', { className: 'mono' }, s.id), el('td', { className: 'mono' }, s.pod), el('td', {}, time(s.connectedAt)))),
      'No socket',
    );
    $('user-rooms').replaceChildren(
      ...(u.rooms.length ? u.rooms.map((r) => el('li', {}, el('a', { href: href('rooms', r), className: 'mono' }, r))) : [el('li', { className: 'muted' }, 'none')]),
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setText('user-online', 'no');
      setText('user-status', '–');
      setText('user-seen', '–');
      button('user-disconnect').disabled = true;
      fillTable('user-sockets', [], 'No socket');
      $('user-rooms').replaceChildren();
      setText('user-result', `${userId} is neither online nor remembered.`);
    } else report(err, 'user-result');
  }
  if (focus) $('user-title').focus();
}

button('user-disconnect').addEventListener('click', async () => {
  const userId = shownUser;
  if (!userId) return;
  const b = button('user-disconnect');
  b.disabled = true;
  try {
    const res = await api.disconnect(userId);
    await showUser(userId, false);
    setText('user-result', `Disconnect sent to every pod: ${res.sockets} socket${res.sockets === 1 ? '' : 's'} of ${userId}.`);
  } catch (err) {
    report(err, 'user-result');
    b.disabled = false;
  }
});
button('user-refresh').addEventListener('click', () => shownUser && void showUser(shownUser, false));

// ---------- rooms ----------

const roomsState = { prefix: '', next: /** @type {string | undefined} */ (undefined) };
const roomState = { name: '', next: /** @type {string | undefined} */ (undefined) };

/** @param {string | undefined} cursor @param {boolean} append */
async function loadRooms(cursor, append) {
  setText('rooms-error', '');
  try {
    const page = await api.rooms(roomsState.prefix, cursor);
    roomsState.next = page.nextCursor;
    const rows = page.rooms.map((r) =>
      el('tr', {}, el('td', {}, el('a', { href: href('rooms', r.room), className: 'mono' }, r.room)), el('td', { className: 'num' }, count(r.members))),
    );
    const table = typed('rooms-table', window.HTMLTableElement);
    if (append && table.tBodies[0]) table.tBodies[0].append(...rows);
    else fillTable('rooms-table', rows, roomsState.prefix ? `No room starts with “${roomsState.prefix}”` : 'No room has members');
    button('rooms-next').hidden = page.nextCursor === undefined;
  } catch (err) {
    report(err, 'rooms-error');
  }
}

form('rooms-search').addEventListener('submit', (event) => {
  event.preventDefault();
  roomsState.prefix = input('rooms-prefix').value.trim();
  void loadRooms(undefined, false);
});
button('rooms-next').addEventListener('click', () => void loadRooms(roomsState.next, true));

/** @param {string} name @param {string | undefined} cursor @param {boolean} append */
async function loadRoom(name, cursor, append) {
  roomState.name = name;
  $('room-detail').hidden = false;
  setText('room-title', name);
  try {
    const r = await api.room(name, cursor);
    roomState.next = r.nextCursor;
    setText('room-count', `${count(r.members)} member${r.members === 1 ? '' : 's'}`);
    const rows = r.users.map(memberRow);
    const table = typed('room-members', window.HTMLTableElement);
    if (append && table.tBodies[0]) table.tBodies[0].append(...rows);
    else fillTable('room-members', rows, 'No member');
    button('room-next').hidden = r.nextCursor === undefined;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setText('room-count', 'Nobody is in this room now; a message is still stored in its history.');
      fillTable('room-members', [], 'No member');
      button('room-next').hidden = true;
    } else report(err, 'room-count');
  }
}
button('room-next').addEventListener('click', () => void loadRoom(roomState.name, roomState.next, true));

form('publish-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const parsed = parseJson(textarea('publish-data').value);
  if (!parsed.ok) {
    setText('publish-result', `Data is ${parsed.message}`);
    return;
  }
  const type = input('publish-type').value.trim();
  try {
    const res = await api.publish(roomState.name, { ...(type ? { type } : {}), data: parsed.value });
    setText('publish-result', `Published message ${res.id} at ${new Date(res.ts).toLocaleTimeString()}.`);
  } catch (err) {
    report(err, 'publish-result');
  }
});

// ---------- notifications ----------

const TARGET_LABELS = { user: 'User id', users: 'User ids, separated by commas or spaces', room: 'Room name', broadcast: '' };

function targetKind() {
  const checked = document.querySelector('input[name="target"]:checked');
  const value = checked instanceof window.HTMLInputElement ? checked.value : 'user';
  return /** @type {import('./lib.js').TargetKind} */ (value in TARGET_LABELS ? value : 'user');
}

function syncTarget() {
  const kind = targetKind();
  $('notify-target-field').hidden = kind === 'broadcast';
  setText('notify-target-label', TARGET_LABELS[kind]);
  $('notify-persist-label').hidden = kind === 'room' || kind === 'broadcast';
}
for (const radio of document.querySelectorAll('input[name="target"]')) radio.addEventListener('change', syncTarget);

form('notify-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const built = notificationJob({
    target: targetKind(),
    to: input('notify-target').value,
    type: input('notify-type').value,
    title: input('notify-title').value,
    body: textarea('notify-body').value,
    data: textarea('notify-data').value,
    id: input('notify-id').value,
    persist: input('notify-persist').checked,
  });
  if (!built.ok) {
    setText('notify-result', built.message);
    return;
  }
  try {
    const res = await api.notify(built.job);
    setText('notify-result', `Enqueued notification ${res.id}.`);
  } catch (err) {
    report(err, 'notify-result');
  }
});

// ---------- queue ----------

async function refreshQueue() {
  try {
    const q = await api.queue();
    clearBanner();
    for (const [state, value] of Object.entries(q.counts)) setText(`qq-${state}`, count(value));
    fillTable(
      'failed-jobs',
      q.failed.map((job) => {
        const retry = el('button', { type: 'button', className: 'secondary', 'data-job': job.id, 'aria-label': `Retry job ${job.id}` }, 'Retry');
        retry.addEventListener('click', () => void retryJob(job.id, retry));
        return el(
          'tr',
          { 'data-job': job.id },
          el('td', { className: 'mono' }, job.id),
          el('td', {}, job.type ?? '–'),
          el('td', {}, job.target ?? '–'),
          el('td', { className: 'reason' }, job.failedReason || '–'),
          el('td', { className: 'num' }, String(job.attemptsMade)),
          el('td', {}, job.finishedOn ? time(job.finishedOn) : '–'),
          el('td', {}, retry),
        );
      }),
      'No failed job',
    );
    setText('queue-updated', `Updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    report(err);
  }
}

/** @param {string} id @param {HTMLElement} control */
async function retryJob(id, control) {
  if (control instanceof window.HTMLButtonElement) control.disabled = true;
  try {
    await api.retry(id);
    setText('queue-result', `Job ${id} is waiting again, with its attempts reset.`);
    await refreshQueue();
  } catch (err) {
    report(err, 'queue-result');
    if (control instanceof window.HTMLButtonElement) control.disabled = false;
  }
}

// ---------- views ----------

/** @type {Record<ViewName, (param: string | undefined) => void>} */
const enter = {
  overview: () => poll(refreshOverview, OVERVIEW_REFRESH_MS),
  users: (param) => {
    void loadUsers(cursorBefore(usersState.prefix), false);
    if (param) void showUser(param);
    else $('user-detail').hidden = true;
  },
  rooms: (param) => {
    void loadRooms(undefined, false);
    setText('publish-result', '');
    if (param) void loadRoom(param, undefined, false);
    else $('room-detail').hidden = true;
  },
  notifications: () => syncTarget(),
  queue: () => poll(refreshQueue, QUEUE_REFRESH_MS),
};

// ---------- start ----------

api.currentSession().then(
  (s) => (s ? signedIn(s) : showSignIn()),
  (err) => {
    showSignIn();
    report(err, 'sign-in-error');
  },
);
