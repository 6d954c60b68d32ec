import { spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnOwned, waitFor } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';

/** Debian's Python, where `apt-get install python3-socketio python3-websocket` puts the modules. */
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python/socketio_client.py', import.meta.url));
/** Bound of the whole Python run: it is killed past it. */
const RUN_TIMEOUT_MS = 30_000;

type PythonLine = { type: string; event?: string; data?: unknown; id?: number; ack?: unknown; transport?: string };

interface PythonUser {
  /** Resolves with the first line (printed so far or to come) `match` accepts. */
  next(match: (line: PythonLine) => boolean, timeoutMs?: number): Promise<PythonLine>;
  /** Emits `event` with an ack from the Python client and resolves with the ack. */
  call(event: string, data: unknown): Promise<unknown>;
  quit(): Promise<number | null>;
  kill(): void;
  output(): string;
}

/** Runs socketio_client.py against `url`; the token travels in the environment, never argv or output. */
function startPythonUser(url: string, token: string): PythonUser {
  const child: ChildProcess = spawnOwned(PYTHON, ['-u', SCRIPT, url], {
    env: { PATH: process.env.PATH ?? '', SB_TOKEN: token },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  let stdout = '';
  let stderr = '';
  const lines: PythonLine[] = [];
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    const complete = stdout.split('\n');
    stdout = complete.pop() ?? '';
    for (const l of complete) if (l.trim()) lines.push(JSON.parse(l) as PythonLine);
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(killer);
      for (const w of waiters) w();
      resolve(code);
    }),
  );
  const output = () => `stdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`;
  let seq = 0;

  const next: PythonUser['next'] = (match, timeoutMs = 10_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (found) {
          finish();
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          finish();
          reject(new Error(`the Python client exited (${child.exitCode ?? child.signalCode}) first\n${output()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no matching line from the Python client within ${timeoutMs} ms\n${output()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  return {
    next,
    async call(event, data) {
      const id = ++seq;
      child.stdin!.write(`${JSON.stringify({ op: 'call', id, event, data })}\n`);
      return (await next((l) => l.type === 'ack' && l.id === id)).ack;
    },
    async quit() {
      child.stdin!.end(`${JSON.stringify({ op: 'quit' })}\n`);
      return exited;
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    output,
  };
}

describe('a python-socketio user and a socket.io-client user on two pods', () => {
  let cluster: Cluster;
  const pythons: PythonUser[] = [];

  beforeAll(async () => {
    const probe = spawnSync(PYTHON, ['-c', 'import socketio, websocket'], { encoding: 'utf8', timeout: 10_000 });
    if (probe.status !== 0) {
      throw new Error(
        `${PYTHON} cannot import socketio and websocket (Debian: apt-get install python3-socketio python3-websocket):\n` +
          `${probe.error?.message ?? probe.stderr}`,
      );
    }
    // CORS_ORIGINS unset, the default: the Python client's Origin is accepted as same-origin
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
  });
  afterEach(() => {
    for (const p of pythons.splice(0)) p.kill();
  });
  afterAll(() => cluster?.stop());

  it('join the same public room, publish, and each gets the other one\'s room:message', async () => {
    const room = 'public:polyglot';
    const js = await cluster.connect({ sub: 'js-user', name: 'JS', gateway: 1 });
    expect(await js.emitWithAck('room:join', { room })).toMatchObject({ ok: true, data: { room } });

    const token = await cluster.token({ sub: 'py-user', name: 'Py' });
    const py = startPythonUser(cluster.gateways[0]!.url, token);
    pythons.push(py);
    expect(await py.next((l) => l.type === 'connected' || l.type === 'connect_error')).toEqual({ type: 'connected', transport: 'websocket' });
    const ready = await py.next((l) => l.event === 'session:ready');
    expect(ready.data).toMatchObject({ userId: 'py-user', pod: cluster.gateways[0]!.podId, unread: 0 });

    // what the gateway saw: a websocket with an Origin naming the gateway itself
    const [pySocket] = [...cluster.gateways[0]!.gateway!.io.of('/').sockets.values()].filter((s) => s.data.userId === 'py-user');
    expect(pySocket?.conn.transport.name).toBe('websocket');
    expect(pySocket?.handshake.headers.origin).toBe(cluster.gateways[0]!.url);

    const joinedByPy = waitFor(js, 'room:member_joined');
    expect(await py.call('room:join', { room })).toMatchObject({ ok: true, data: { room, members: 2 } });
    expect(await joinedByPy).toEqual({ room, userId: 'py-user', name: 'Py' });

    // JS → Python, across pods
    const fromJs = await js.emitWithAck('room:publish', { room, type: 'chat', data: { text: 'hello from node' } });
    if (!fromJs.ok) throw new Error(fromJs.error.message);
    const atPy = await py.next((l) => l.event === 'room:message');
    expect(atPy.data).toEqual({
      room,
      id: fromJs.data.id,
      ts: fromJs.data.ts,
      type: 'chat',
      from: { userId: 'js-user', name: 'JS' },
      data: { text: 'hello from node' },
    });

    // Python → JS, across pods
    const atJs = waitFor(js, 'room:message');
    const fromPy = (await py.call('room:publish', { room, data: { text: 'hello from python', n: 3 } })) as {
      ok: boolean;
      data: { id: string; ts: number };
    };
    expect(fromPy).toEqual({ ok: true, data: { id: expect.stringMatching(/^\d+-\d+$/), ts: expect.any(Number) } });
    expect(await atJs).toEqual({
      room,
      id: fromPy.data.id,
      ts: fromPy.data.ts,
      from: { userId: 'py-user', name: 'Py' },
      data: { text: 'hello from python', n: 3 },
    });

    // a refused event answers the same envelope in Python
    expect(await py.call('room:publish', { room: 'public:not-joined', data: 1 })).toEqual({
      ok: false,
      error: { code: 'FORBIDDEN', message: expect.any(String) },
    });

    expect(await py.quit()).toBe(0);
    expect(py.output()).not.toContain(token);
  });
});
