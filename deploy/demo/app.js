// Switchboard demo client: vanilla JS on the Socket.IO browser client (window.io).
const $ = (id) => document.getElementById(id);
const ACK_TIMEOUT_MS = 10_000;
const TYPING_IDLE_MS = 2_000;
const TYPING_SHOWN_MS = 5_000;

let lbUrl = '';
let notifyEnabled = false;
let socket = null;
/** The access token of this session, in memory only: /dev/notify needs it to know who asks. */
let token = null;
let currentRoom = null;
/** Distinct users in the current room: the join's count, then member_joined / member_left. */
let members = 0;
/** Last message id seen per room, so a rejoin after a reconnect asks for what was missed. */
const lastIds = new Map();
const typingUsers = new Map();
const presence = new Map();
let typingSent = false;
let typingTimer;

// ---------- helpers ----------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'className') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function clock(ts = Date.now()) {
  return el('time', {}, new Date(ts).toLocaleTimeString());
}

function append(list, item) {
  const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(item);
  while (list.children.length > 300) list.firstElementChild.remove();
  if (stick) list.scrollTop = list.scrollHeight;
}

function log(text, kind = '') {
  append($('log'), el('li', { className: kind }, clock(), text));
}

function showError(what, error) {
  log(`${what}: ${error.code} ${error.message}`, 'error');
}

function system(text) {
  append($('messages'), el('li', { className: 'system' }, clock(), text));
}

function text(data) {
  if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
  return JSON.stringify(data);
}

/** Emits a client event and resolves with its ack envelope; a missing answer becomes an error. */
function request(event, payload) {
  return new Promise((resolve) => {
    if (!socket?.connected) {
      resolve({ ok: false, error: { code: 'DISCONNECTED', message: 'not connected' } });
      return;
    }
    socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, response) => {
      if (err) resolve({ ok: false, error: { code: 'TIMEOUT', message: `no answer within ${ACK_TIMEOUT_MS / 1000} s` } });
      else resolve(response);
    });
  });
}

async function fetchToken() {
  const params = new window.URLSearchParams({ user: $('user').value.trim(), name: $('name').value.trim() });
  const res = await window.fetch(`/dev/token?${params}`, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error?.message ?? `token request failed (HTTP ${res.status})`);
  token = body.token;
  return body.token;
}

/** The unread count, in the session panel and the badge. */
function setUnread(count) {
  const known = Number.isInteger(count);
  $('unread').textContent = known ? String(count) : '–';
  const badge = $('badge');
  badge.textContent = `${known ? count : 0} unread`;
  badge.classList.toggle('has-unread', known && count > 0);
}

function unreadCount() {
  const n = Number($('unread').textContent);
  return Number.isInteger(n) ? n : 0;
}

function renderMembers() {
  $('room-info').textContent = currentRoom ? `${members} member${members === 1 ? '' : 's'}` : '';
}

function setConnected(on) {
  $('state').textContent = on ? 'connected' : socket?.active ? 'reconnecting…' : 'disconnected';
  $('state').className = `state ${on ? 'on' : 'off'}`;
  for (const button of document.querySelectorAll('[data-needs-socket]')) button.disabled = !on;
  if (!notifyEnabled) $('notify-me').disabled = true;
  $('connect').disabled = Boolean(socket);
  $('disconnect').disabled = !socket;
  if (!on) {
    $('transport-now').textContent = '–';
    typingUsers.clear();
    renderTyping();
  }
}

// ---------- session ----------

function connect() {
  const user = $('user').value.trim();
  window.localStorage.setItem('sb-demo-user', user);
  window.localStorage.setItem('sb-demo-name', $('name').value.trim());
  const websocketOnly = $('transport').value === 'websocket';

  socket = window.io(lbUrl, {
    transports: websocketOnly ? ['websocket'] : ['polling', 'websocket'],
    // Sends the load balancer's SBSRV cookie, which keeps long-polling requests on one pod.
    withCredentials: true,
    // Called on every (re)connection, so a reconnect after expiry gets a fresh token.
    auth: (cb) => {
      fetchToken().then(
        (token) => cb({ token }),
        (err) => {
          log(`token: ${err.message}`, 'error');
          cb({});
        },
      );
    },
  });
  setConnected(false);
  $('state').textContent = 'connecting…';

  socket.on('connect', () => {
    setConnected(true);
    const engine = socket.io.engine;
    $('transport-now').textContent = engine.transport.name;
    engine.once('upgrade', () => ($('transport-now').textContent = engine.transport.name));
  });

  socket.on('connect_error', (err) => {
    const detail = err.data?.message ? ` (${err.data.message})` : '';
    log(`connect_error: ${err.message}${detail}`, 'error');
    if (!socket.active) {
      log('the server refused the handshake; fix the cause and connect again', 'error');
      teardown();
    }
  });

  socket.on('disconnect', (reason) => {
    log(`disconnected: ${reason}${socket?.active ? ', reconnecting through the load balancer' : ''}`);
    setConnected(false);
    if (socket && !socket.active) teardown();
  });

  socket.io.on('reconnect_attempt', (n) => log(`reconnect attempt ${n}`));

  socket.on('session:ready', async (s) => {
    $('pod').textContent = s.pod;
    $('socket-id').textContent = s.socketId;
    setUnread(s.unread);
    log(`session:ready as ${s.userId} on pod ${s.pod}`);
    // Room membership belongs to the socket: a new socket joins again and catches up.
    if (currentRoom) await join(currentRoom, true);
    const watched = [...presence.keys()];
    if (watched.length) await watch(watched);
  });

  socket.on('session:expiring', async ({ exp }) => {
    log(`session:expiring at ${new Date(exp * 1000).toLocaleTimeString()}, refreshing the token`);
    try {
      const res = await request('auth:refresh', { token: await fetchToken() });
      if (!res.ok) showError('auth:refresh', res.error);
    } catch (err) {
      log(`token: ${err.message}`, 'error');
    }
  });

  socket.on('session:error', (e) => showError(`session:error${e.event ? ` (${e.event})` : ''}`, e));

  socket.on('room:message', (m) => {
    if (m.room !== currentRoom) return;
    lastIds.set(m.room, m.id);
    typingUsers.delete(m.from.userId);
    renderTyping();
    addMessage(m, false);
  });

  socket.on('room:typing', ({ room, userId, typing }) => {
    if (room !== currentRoom) return;
    clearTimeout(typingUsers.get(userId));
    if (typing) {
      typingUsers.set(userId, setTimeout(() => {
        typingUsers.delete(userId);
        renderTyping();
      }, TYPING_SHOWN_MS));
    } else typingUsers.delete(userId);
    renderTyping();
  });

  socket.on('room:member_joined', ({ room, userId, name }) => {
    if (room !== currentRoom) return;
    members += 1;
    renderMembers();
    system(`${name ? `${name} (${userId})` : userId} joined`);
  });
  socket.on('room:member_left', ({ room, userId }) => {
    if (room !== currentRoom) return;
    // This socket is still in the room: at least one member.
    members = Math.max(1, members - 1);
    renderMembers();
    system(`${userId} left`);
  });

  socket.on('presence:changed', (p) => {
    presence.set(p.userId, p);
    renderPresence();
  });

  socket.on('notification', (n) => {
    $('notifications').prepend(notificationItem({ ...n, read: false }));
    setUnread(unreadCount() + 1);
    log(`notification: ${n.type}${n.title ? ` "${n.title}"` : ''}`);
  });
  socket.on('notification:unread', ({ unread }) => setUnread(unread));
}

function teardown() {
  socket?.removeAllListeners();
  socket?.io.removeAllListeners();
  socket?.disconnect();
  socket = null;
  token = null;
  setConnected(false);
  for (const id of ['pod', 'socket-id']) $(id).textContent = '–';
  setUnread(undefined);
  // The room is joined again on the next connect; its count comes with that join.
  $('room-info').textContent = '';
}

// ---------- rooms ----------

function addMessage(m, mine) {
  const who = m.from.name ? `${m.from.name}` : m.from.userId;
  append(
    $('messages'),
    el('li', { className: mine ? 'mine' : '', title: `${m.from.userId} · ${m.id}` }, clock(m.ts), el('span', { className: 'who' }, who), text(m.data)),
  );
}

async function join(room, rejoin = false) {
  const payload = { room };
  if (rejoin && lastIds.has(room)) payload.since = lastIds.get(room);
  const res = await request('room:join', payload);
  if (!res.ok) {
    showError('room:join', res.error);
    if (rejoin) currentRoom = null;
    return false;
  }
  if (!rejoin) {
    $('messages').replaceChildren();
    system(`joined ${res.data.room}`);
  }
  currentRoom = res.data.room;
  members = res.data.members;
  renderMembers();
  const history = res.data.history;
  if (history) {
    if (!history.recovered) system('some messages were missed while disconnected');
    for (const m of history.messages) {
      lastIds.set(m.room, m.id);
      addMessage(m, false);
    }
  }
  return true;
}

function renderTyping() {
  const names = [...typingUsers.keys()];
  $('typing').textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}

function sendTyping(typing) {
  if (!currentRoom || !socket?.connected || typingSent === typing) return;
  typingSent = typing;
  // Typing is volatile: dropped rather than queued while the connection is busy.
  socket.volatile.emit('room:typing', { room: currentRoom, typing });
}

// ---------- presence ----------

async function watch(userIds) {
  const res = await request('presence:watch', { userIds });
  if (!res.ok) return showError('presence:watch', res.error);
  for (const p of res.data.presence) presence.set(p.userId, p);
  renderPresence();
}

function renderPresence() {
  const items = [...presence.values()].sort((a, b) => a.userId.localeCompare(b.userId));
  $('presence').replaceChildren(
    ...items.map((p) => {
      const seen = !p.online && p.lastSeen ? `, last seen ${new Date(p.lastSeen).toLocaleTimeString()}` : '';
      return el('li', {}, el('span', { className: `dot ${p.online ? 'online' : ''}` }), `${p.userId}: ${p.online ? p.status : 'offline'}${seen}`);
    }),
  );
}

// ---------- notifications ----------

function notificationItem(n) {
  const title = n.title ?? n.type;
  return el(
    'li',
    { className: n.read ? '' : 'unread' },
    clock(n.ts),
    title,
    n.body ? el('div', { className: 'muted' }, n.body) : '',
  );
}

async function refreshNotifications() {
  const res = await request('notification:list', { limit: 20 });
  if (!res.ok) return showError('notification:list', res.error);
  $('notifications').replaceChildren(...res.data.items.map(notificationItem));
  setUnread(res.data.unread);
}

async function sendMeANotification() {
  const button = $('notify-me');
  button.disabled = true;
  try {
    const res = await window.fetch('/dev/notify', { method: 'POST', headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) log(`send me a notification: ${body.error?.message ?? `HTTP ${res.status}`}`, 'error');
    else log(`notification ${body.id} sent through the admin API; it arrives as a "notification" event`);
  } catch (err) {
    log(`send me a notification: ${err.message}`, 'error');
  } finally {
    button.disabled = !socket?.connected;
  }
}

// ---------- wiring ----------

async function init() {
  // Defaults and handlers first, before anything is awaited: what is typed or clicked while the
  // configuration loads is kept (Connect waits for it).
  $('user').value ||= window.localStorage.getItem('sb-demo-user') || `user-${Math.random().toString(36).slice(2, 6)}`;
  $('name').value ||= window.localStorage.getItem('sb-demo-name') || '';

  $('connect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!socket) connect();
  });
  $('disconnect').addEventListener('click', () => {
    log('disconnected by you');
    teardown();
  });

  $('join-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const room = $('room').value.trim();
    const previous = currentRoom;
    // One room at a time in this page: leave the previous one once the new one is joined.
    if (!(await join(room)) || !previous || previous === currentRoom) return;
    const left = await request('room:leave', { room: previous });
    if (!left.ok) showError('room:leave', left.error);
  });
  $('leave').addEventListener('click', async () => {
    if (!currentRoom) return;
    const res = await request('room:leave', { room: currentRoom });
    if (!res.ok) return showError('room:leave', res.error);
    system(`left ${currentRoom}`);
    currentRoom = null;
    renderMembers();
  });

  $('message').addEventListener('input', () => {
    sendTyping(true);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => sendTyping(false), TYPING_IDLE_MS);
  });
  $('send-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('message');
    const body = input.value.trim();
    if (!body) return;
    if (!currentRoom) return log('join a room first', 'error');
    clearTimeout(typingTimer);
    sendTyping(false);
    const data = { text: body };
    const res = await request('room:publish', { room: currentRoom, data });
    if (!res.ok) return showError('room:publish', res.error);
    input.value = '';
    lastIds.set(currentRoom, res.data.id);
    addMessage({ room: currentRoom, id: res.data.id, ts: res.data.ts, from: { userId: $('user').value.trim(), name: $('name').value.trim() || undefined }, data }, true);
  });

  $('watch-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const ids = $('watch').value.split(/[\s,]+/).filter(Boolean);
    if (ids.length) await watch(ids);
  });

  $('refresh').addEventListener('click', refreshNotifications);
  $('notify-me').addEventListener('click', sendMeANotification);
  $('read-all').addEventListener('click', async () => {
    const res = await request('notification:read', { all: true });
    if (!res.ok) return showError('notification:read', res.error);
    setUnread(res.data.unread);
    for (const li of $('notifications').children) li.classList.remove('unread');
  });

  setConnected(false);
  $('connect').disabled = true;

  const config = await window
    .fetch('/config.json')
    .then((r) => r.json())
    .catch(() => ({}));
  lbUrl = config.lbUrl || `${window.location.protocol}//${window.location.hostname}:${config.lbPort ?? 8000}`;
  $('lb').textContent = lbUrl;
  if (config.mintTokens === false) log('token minting is off on the demo server (DEMO_MINT_TOKENS=true enables it)', 'error');
  notifyEnabled = config.notify === true;
  if (!notifyEnabled) $('notify-me').title = 'The demo server has no admin API (DEMO_ADMIN_URL, DEMO_ADMIN_API_KEY)';
  $('connect').disabled = Boolean(socket);
}

init();
