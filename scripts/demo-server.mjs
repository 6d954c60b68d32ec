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
//
// Environment: DEMO_HOST (127.0.0.1), DEMO_PORT (8090), DEMO_MINT_TOKENS (false), JWT_SECRET,
// JWT_ISSUER / JWT_AUDIENCE (added to minted tokens when set), DEMO_TOKEN_TTL_SEC (600),
// DEMO_LB_URL (load balancer URL as the browser sees it; default: the page's host, port DEMO_LB_PORT),
// DEMO_LB_PORT (8000).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { SignJWT } from 'jose';

const env = process.env;
const host = env.DEMO_HOST || '127.0.0.1';
const port = Number(env.DEMO_PORT || 8090);
const mintTokens = env.DEMO_MINT_TOKENS === 'true';
const ttlSec = Number(env.DEMO_TOKEN_TTL_SEC || 600);
const lbUrl = env.DEMO_LB_URL || null;
const lbPort = Number(env.DEMO_LB_PORT || 8000);
const secret = env.JWT_SECRET ? new TextEncoder().encode(env.JWT_SECRET) : undefined;

function fail(message) {
  console.error(`demo-server: ${message}`);
  process.exit(1);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('DEMO_PORT must be a port number');
if (!Number.isInteger(lbPort) || lbPort < 1 || lbPort > 65535) fail('DEMO_LB_PORT must be a port number');
if (!Number.isInteger(ttlSec) || ttlSec < 30 || ttlSec > 86_400) fail('DEMO_TOKEN_TTL_SEC must be 30..86400');
if (mintTokens && !secret) fail('JWT_SECRET is required when DEMO_MINT_TOKENS=true');
if (mintTokens && secret.length < 32) fail('JWT_SECRET must be at least 32 bytes');

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

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://demo.invalid');
  if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 405, 'INVALID_PAYLOAD', 'GET only');
  if (url.pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
  if (url.pathname === '/config.json') return sendJson(res, 200, { lbUrl, lbPort, mintTokens });
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
});
server.on('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`));

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
