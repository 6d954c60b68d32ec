#!/usr/bin/env node
// The demo page's static server (deploy/demo), for development only.
//
//   GET /                   deploy/demo/index.html (and its app.js, style.css)
//   GET /socket.io.min.js   the Socket.IO browser client from node_modules
//   GET /config.json        where the page finds the load balancer
//   GET /dev/token?user=<id>&name=<display name>
//                           a short-lived HS256 access token signed with JWT_SECRET, so the page
//                           can log in as anyone. Refused unless DEMO_MINT_TOKENS=true: a real app
//                           issues tokens from its own backend after authenticating the user.
//   POST /dev/notify        with `Authorization: Bearer <access token>`: sends the token's user a
//                           notification through the admin API (POST /v1/notifications), with
//                           the admin key DEMO_ADMIN_API_KEY, which never leaves this server.
//                           Refused unless DEMO_ADMIN_URL and DEMO_ADMIN_API_KEY are set.
//
// Environment: DEMO_HOST (127.0.0.1), DEMO_PORT (8090), DEMO_MINT_TOKENS (false), JWT_SECRET,
// JWT_ISSUER / JWT_AUDIENCE (added to minted tokens when set), DEMO_TOKEN_TTL_SEC (600),
// DEMO_LB_URL (load balancer URL as the browser sees it; default: the page's host, port DEMO_LB_PORT),
// DEMO_LB_PORT (8000), DEMO_ADMIN_URL (the admin API as this server reaches it), DEMO_ADMIN_API_KEY.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { jwtVerify, SignJWT } from 'jose';

const env = process.env;
const host = env.DEMO_HOST || '127.0.0.1';
const port = Number(env.DEMO_PORT || 8090);
const mintTokens = env.DEMO_MINT_TOKENS === 'true';
const ttlSec = Number(env.DEMO_TOKEN_TTL_SEC || 600);
const lbUrl = env.DEMO_LB_URL || null;
const lbPort = Number(env.DEMO_LB_PORT || 8000);
const secret = env.JWT_SECRET ? new TextEncoder().encode(env.JWT_SECRET) : undefined;
const adminUrl = env.DEMO_ADMIN_URL ? env.DEMO_ADMIN_URL.replace(/\/+$/, '') : undefined;
const adminKey = env.DEMO_ADMIN_API_KEY || undefined;
const notify = Boolean(adminUrl && adminKey);

function fail(message) {
  console.error(`demo-server: ${message}`);
  process.exit(1);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('DEMO_PORT must be a port number');
if (!Number.isInteger(lbPort) || lbPort < 1 || lbPort > 65535) fail('DEMO_LB_PORT must be a port number');
if (!Number.isInteger(ttlSec) || ttlSec < 30 || ttlSec > 86_400) fail('DEMO_TOKEN_TTL_SEC must be 30..86400');
if (mintTokens && !secret) fail('JWT_SECRET is required when DEMO_MINT_TOKENS=true');
if (mintTokens && secret.length < 32) fail('JWT_SECRET must be at least 32 bytes');
if (Boolean(adminUrl) !== Boolean(adminKey)) fail('DEMO_ADMIN_URL and DEMO_ADMIN_API_KEY are set together');
if (adminUrl && !/^https?:\/\/[^/\s]+/.test(adminUrl)) fail('DEMO_ADMIN_URL must be an http(s) URL');
if (notify && !secret) fail('JWT_SECRET is required with DEMO_ADMIN_URL: /dev/notify checks whose token asks');

const root = new URL('../', import.meta.url);
const files = {
  '/': { url: new URL('deploy/demo/index.html', root), type: 'text/html; charset=utf-8' },
  '/index.html': { url: new URL('deploy/demo/index.html', root), type: 'text/html; charset=utf-8' },
  '/app.js': { url: new URL('deploy/demo/app.js', root), type: 'text/javascript; charset=utf-8' },
  '/style.css': { url: new URL('deploy/demo/style.css', root), type: 'text/css; charset=utf-8' },
  '/socket.io.min.js': {
    url: new URL('node_modules/socket.io-client/dist/socket.io.min.js', root),
    type: 'text/javascript; charset=utf-8',
  },
};

const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const CSP = [
  "default-src 'self'",
  "connect-src 'self' http: https: ws: wss:",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function send(res, status, body, type = 'application/json; charset=utf-8', extra = {}) {
  res.writeHead(status, {
    'content-type': type,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...extra,
  });
  res.end(body);
}

function sendJson(res, status, value) {
  send(res, status, JSON.stringify(value), undefined, { 'cache-control': 'no-store' });
}

function error(res, status, code, message) {
  sendJson(res, status, { error: { code, message } });
}

async function mint(res, params) {
  if (!mintTokens) {
    return error(res, 403, 'FORBIDDEN', 'Token minting is off. Start the demo server with DEMO_MINT_TOKENS=true (development only).');
  }
  const user = params.get('user') ?? '';
  const name = (params.get('name') ?? '').trim();
  if (!USER_ID.test(user)) {
    return error(res, 400, 'INVALID_PAYLOAD', 'user must be 1-128 characters of A-Z a-z 0-9 . _ : @ -');
  }
  if (name.length > 64) return error(res, 400, 'INVALID_PAYLOAD', 'name must be at most 64 characters');
  const exp = Math.floor(Date.now() / 1000) + ttlSec;
  let jwt = new SignJWT(name ? { name } : {})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(exp);
  if (env.JWT_ISSUER) jwt = jwt.setIssuer(env.JWT_ISSUER);
  if (env.JWT_AUDIENCE) jwt = jwt.setAudience(env.JWT_AUDIENCE.split(',')[0].trim());
  sendJson(res, 200, { token: await jwt.sign(secret), exp });
}

const NOTIFY_TIMEOUT_MS = 5000;

/** The user of a request's Bearer access token, or undefined. */
async function tokenUser(req) {
  const token = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
  if (!token) return undefined;
  try {
    const { payload } = await jwtVerify(token, secret, {
      algorithms: ['HS256'],
      ...(env.JWT_ISSUER ? { issuer: env.JWT_ISSUER } : {}),
      ...(env.JWT_AUDIENCE ? { audience: env.JWT_AUDIENCE.split(',').map((a) => a.trim()) } : {}),
    });
    return typeof payload.sub === 'string' && USER_ID.test(payload.sub) ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

async function sendNotification(req, res) {
  if (!notify) {
    return error(res, 403, 'FORBIDDEN', 'Notifications are off. Start the demo server with DEMO_ADMIN_URL and DEMO_ADMIN_API_KEY.');
  }
  const userId = await tokenUser(req);
  if (!userId) return error(res, 401, 'UNAUTHORIZED', 'Send your access token as Authorization: Bearer <token> (a valid, unexpired one)');
  const job = {
    to: { userId },
    type: 'demo.hello',
    title: 'Hello from the demo',
    body: `Sent through the admin API at ${new Date().toISOString().slice(11, 19)} UTC`,
  };
  let answer;
  try {
    answer = await fetch(`${adminUrl}/v1/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(job),
      signal: AbortSignal.timeout(NOTIFY_TIMEOUT_MS),
    });
  } catch (err) {
    console.error(`demo-server: the admin API at ${adminUrl} did not answer: ${err.message}`);
    return error(res, 502, 'UNAVAILABLE', 'The admin API did not answer');
  }
  const body = await answer.json().catch(() => ({}));
  if (answer.status !== 202 || typeof body.id !== 'string') {
    const why = typeof body.error?.message === 'string' ? `: ${body.error.message}` : '';
    console.error(`demo-server: the admin API answered ${answer.status}${why}`);
    return error(res, 502, 'UNAVAILABLE', `The admin API answered ${answer.status}${why}`);
  }
  console.log(`demo-server: notification ${body.id} sent to ${userId}`);
  sendJson(res, 202, { id: body.id });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://demo.invalid');
  if (url.pathname === '/dev/notify') {
    if (req.method !== 'POST') return error(res, 405, 'INVALID_PAYLOAD', 'POST only');
    req.resume(); // the body is not used
    return void sendNotification(req, res).catch((err) => {
      console.error('demo-server: cannot send a notification:', err);
      error(res, 500, 'INTERNAL', 'Internal error');
    });
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 405, 'INVALID_PAYLOAD', 'GET only');
  if (url.pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
  if (url.pathname === '/config.json') return sendJson(res, 200, { lbUrl, lbPort, mintTokens, notify });
  if (url.pathname === '/dev/token') {
    return void mint(res, url.searchParams).catch((err) => {
      console.error('demo-server: cannot mint a token:', err);
      error(res, 500, 'INTERNAL', 'Internal error');
    });
  }
  const file = files[url.pathname];
  if (!file) return error(res, 404, 'NOT_FOUND', 'Not found');
  readFile(file.url).then(
    (body) => send(res, 200, body, file.type, { 'cache-control': 'no-cache', 'content-security-policy': CSP }),
    () => error(res, 404, 'NOT_FOUND', `${url.pathname} is missing (run npm ci?)`),
  );
});

server.listen(port, host, () => {
  const address = server.address();
  console.log(`demo-server: http://${host}:${typeof address === 'object' && address ? address.port : port}`);
  if (mintTokens) {
    console.log('demo-server: DEMO_MINT_TOKENS=true: anyone reaching this page gets a token for any user (development only)');
  }
  if (notify) console.log(`demo-server: /dev/notify sends notifications through the admin API at ${adminUrl}`);
});
server.on('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`));

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
