#!/usr/bin/env node
// Waits until every given service answers, for scripts/cluster.sh.
//
//   node scripts/wait-ready.mjs [--timeout <seconds>] [--logs <dir>] <name> <pid> <url> ...
//
// An http(s) URL is ready when it answers 200; a redis:// URL when it answers PING. A service
// whose process exits fails at once. On failure the last lines of <logs>/<name>.log are shown
// and the exit code is 1.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

const args = process.argv.slice(2);
let timeoutSec = 60;
let logs;
const services = [];
while (args.length) {
  const a = args.shift();
  if (a === '--timeout') timeoutSec = Number(args.shift());
  else if (a === '--logs') logs = args.shift();
  else services.push({ name: a, pid: Number(args.shift()), url: args.shift(), ready: false });
}
if (!services.length || services.some((s) => !s.url || !Number.isInteger(s.pid)) || !(timeoutSec > 0)) {
  console.error('usage: wait-ready.mjs [--timeout <seconds>] [--logs <dir>] <name> <pid> <url> ...');
  process.exit(2);
}

function alive(pid) {
  try {
    // A zombie has exited even though signal 0 still reaches it.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

async function httpReady(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

function redisReady(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

function tail(name, lines = 20) {
  if (!logs) return '';
  try {
    const text = readFileSync(join(logs, `${name}.log`), 'utf8').trimEnd().split('\n').slice(-lines);
    return text.map((l) => `    ${l}`).join('\n');
  } catch {
    return '';
  }
}

function report(failed, why) {
  for (const s of failed) {
    console.error(`\n${s.name} ${why} (${s.url}); last lines of ${logs ? join(logs, `${s.name}.log`) : 'its log'}:`);
    console.error(tail(s.name) || '    (empty)');
  }
  process.exit(1);
}

const deadline = Date.now() + timeoutSec * 1000;
for (;;) {
  const pending = services.filter((s) => !s.ready);
  const dead = pending.filter((s) => !alive(s.pid));
  if (dead.length) report(dead, 'exited during start');
  await Promise.all(
    pending.map(async (s) => {
      s.ready = s.url.startsWith('redis://') ? await redisReady(s.url) : await httpReady(s.url);
    }),
  );
  if (services.every((s) => s.ready)) process.exit(0);
  if (Date.now() > deadline) report(services.filter((s) => !s.ready), `was not ready within ${timeoutSec} s`);
  await new Promise((r) => setTimeout(r, 250));
}
