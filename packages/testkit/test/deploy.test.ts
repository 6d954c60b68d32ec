import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { HAPROXY_CONFIG, haproxyBinary, startHaproxy, type HaproxyHandle } from '../src/haproxy.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const repo = (...parts: string[]) => join(root, ...parts);
const read = (...parts: string[]) => readFileSync(repo(...parts), 'utf8');

/** The environment without load-balancer variables a developer may have exported. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(LB_|GATEWAY_\d)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function run(command: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(command, args, { cwd: root, env: cleanEnv(env), encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, output: `${r.error ? `${r.error.message}\n` : ''}${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// ---------------------------------------------------------------- YAML

/** Every document of a YAML file (the `yaml` devDependency; merge keys on), failing on the first error. */
function parseAll(text: string): unknown[] {
  return parseAllDocuments(text, { merge: true }).map((doc) => {
    if (doc.errors.length) throw doc.errors[0];
    return doc.toJS();
  });
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => {
  expect(v, 'expected a mapping').toBeTypeOf('object');
  return v as Obj;
};
const arr = (v: unknown): unknown[] => {
  expect(Array.isArray(v), 'expected a list').toBe(true);
  return v as unknown[];
};

// ---------------------------------------------------------------- HAProxy configuration

describe('deploy/haproxy/haproxy.cfg', () => {
  const haproxy = haproxyBinary();
  const check = (env: Record<string, string>) => run(haproxy, ['-c', '-f', HAPROXY_CONFIG], env);

  it('is valid with three gateways, the stats frontend and a DNS resolver (docker-compose)', () => {
    const r = check({
      LB_BIND: ':8000',
      LB_STATS_BIND: ':8404',
      LB_RESOLVER: '127.0.0.11:53',
      GATEWAY_1: '127.0.0.1:3001',
      GATEWAY_2: '127.0.0.1:3002',
      GATEWAY_3: '127.0.0.1:3003',
    });
    expect(r.output).toContain('Configuration file is valid');
    expect(r.code).toBe(0);
  });

  it('is valid with two gateways, whether the third slot is unset or empty', () => {
    const base = { LB_BIND: '127.0.0.1:8000', GATEWAY_1: '127.0.0.1:3001', GATEWAY_2: '127.0.0.1:3002' };
    for (const env of [base, { ...base, GATEWAY_3: '' }]) {
      const r = check(env);
      expect(r.output).toContain('Configuration file is valid');
      expect(r.code).toBe(0);
    }
  });

  it('takes tuned health checks from the environment and rejects bad values', () => {
    const base = { LB_BIND: '127.0.0.1:8000', GATEWAY_1: '127.0.0.1:3001' };
    expect(check({ ...base, LB_CHECK_INTER: '250ms', LB_CHECK_FALL: '3', LB_CHECK_RISE: '1' }).code).toBe(0);
    expect(check({ ...base, LB_CHECK_INTER: 'often' }).code).not.toBe(0);
  });

  it('refuses to start without LB_BIND or GATEWAY_1, naming the variable', () => {
    const noGateway = check({ LB_BIND: '127.0.0.1:8000' });
    expect(noGateway.code).not.toBe(0);
    expect(noGateway.output).toContain('GATEWAY_1 must be set');
    const noBind = check({ GATEWAY_1: '127.0.0.1:3001' });
    expect(noBind.code).not.toBe(0);
    expect(noBind.output).toContain('LB_BIND must be set');
  });
});

// ---------------------------------------------------------------- Prometheus and Grafana

describe('deploy/prometheus', () => {
  it('promtool accepts the configuration', () => {
    const r = run('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('promtool accepts the alerting rules', () => {
    const r = run('promtool', ['check', 'rules', 'deploy/prometheus/alerts.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('the alerts pass their promtool unit tests', () => {
    const r = run('promtool', ['test', 'rules', 'deploy/prometheus/alerts.test.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('alerts cover the metrics of the operations contract', () => {
    const rules = read('deploy/prometheus/alerts.yml');
    for (const metric of [
      'switchboard_gateway_connections_total',
      'switchboard_gateway_events_total',
      'switchboard_dispatcher_jobs_total',
      'switchboard_queue_jobs',
      'switchboard_registry_reaped_sockets_total',
      'switchboard_registry_heartbeat_age_seconds',
    ]) {
      expect(rules).toContain(metric);
    }
    const tested = [...read('deploy/prometheus/alerts.test.yml').matchAll(/alertname: (\w+)/g)].map((m) => m[1]);
    expect(new Set(tested).size).toBeGreaterThanOrEqual(3);
  });
});

describe('deploy/grafana', () => {
  interface Panel {
    id: number;
    type: string;
    title: string;
    targets?: { expr: string }[];
    panels?: Panel[];
  }
  const dashboard = JSON.parse(read('deploy/grafana/dashboards/switchboard.json')) as { uid: string; panels: Panel[] };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

  it('every panel queries a switchboard_ metric', () => {
    expect(panels.length).toBeGreaterThan(5);
    for (const panel of panels) {
      expect(panel.targets?.length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
      for (const t of panel.targets ?? []) expect(t.expr, `panel "${panel.title}"`).toMatch(/\bswitchboard_[a-z0-9_]+/);
    }
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
  });

  it('shows connections, handshakes, events, latency, queue and delivery', () => {
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const metric of [
      'switchboard_gateway_connections',
      'switchboard_gateway_connections_total',
      'switchboard_gateway_events_total',
      'switchboard_gateway_event_duration_seconds_bucket',
      'switchboard_queue_jobs',
      'switchboard_dispatcher_jobs_total',
      'switchboard_notification_delivery_latency_seconds_bucket',
    ]) {
      expect(exprs).toMatch(new RegExp(`\\b${metric}\\b`));
    }
    expect(exprs).toMatch(/histogram_quantile\(0\.99, sum by \(le, event\) \(rate\(switchboard_gateway_event_duration_seconds_bucket/);
  });
});

// ---------------------------------------------------------------- docker-compose.yml and k8s/

describe('docker-compose.yml', () => {
  const file = 'docker-compose.yml';
  const services = ['redis', 'gateway-1', 'gateway-2', 'gateway-3', 'haproxy', 'dispatcher', 'admin', 'prometheus', 'grafana', 'demo'];

  it('parses and runs the cluster of scripts/cluster.sh', () => {
    const [doc] = parseAll(read(file));
    const svc = obj(obj(doc).services);
    expect(Object.keys(svc)).toEqual(expect.arrayContaining(services));
    const env = (name: string) => obj(obj(svc[name]).environment) as Record<string, string>;
    const command = (name: string) => (obj(svc[name]).command as string[]).join(' ');

    expect(command('redis')).toContain('--appendonly yes');
    // the services warn at start about a Redis that may evict keys, or has no maxmemory
    expect(command('redis')).toMatch(/--maxmemory \d+mb --maxmemory-policy noeviction/);
    for (const i of [1, 2, 3]) {
      expect(command(`gateway-${i}`)).toBe('node services/gateway/dist/main.js');
      expect(env(`gateway-${i}`)).toMatchObject({ POD_ID: `gw-${i}`, REDIS_URL: 'redis://redis:6379' });
      expect(env(`gateway-${i}`).CORS_ORIGINS).toContain('http://127.0.0.1:8090');
      // HAProxy's slot i points at this gateway's public port.
      expect(env('haproxy')[`GATEWAY_${i}`]).toBe(`gateway-${i}:${env(`gateway-${i}`).PORT}`);
    }
    expect(command('dispatcher')).toBe('node services/dispatcher/dist/main.js');
    expect(command('admin')).toBe('node services/admin/dist/main.js');
    expect(command('demo')).toBe('node scripts/demo-server.mjs');
    expect(env('haproxy').LB_BIND).toBeTruthy();
    expect(arr(obj(svc.haproxy).volumes)).toContain('./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');

    // Prometheus scrapes the ports the services listen on.
    const prometheus = JSON.stringify(parseAll(read('deploy/prometheus/prometheus.yml'))[0]);
    for (const i of [1, 2, 3]) expect(prometheus).toContain(`gateway-${i}:${env(`gateway-${i}`).OPS_PORT}`);
    expect(prometheus).toContain(`dispatcher:${env('dispatcher').OPS_PORT}`);
    expect(prometheus).toContain(`admin:${env('admin').PORT}`);
    expect(prometheus).toContain(`haproxy${env('haproxy').LB_STATS_BIND}`);

    // Grafana finds the dashboards where its provider looks.
    const provider = obj(arr(obj(parseAll(read('deploy/grafana/provisioning/dashboards/switchboard.yml'))[0]).providers)[0]);
    const dashboardsPath = obj(provider.options).path as string;
    expect(arr(obj(svc.grafana).volumes)).toContain(`./deploy/grafana/dashboards:${dashboardsPath}:ro`);

    // Every mounted file or directory exists.
    for (const s of Object.values(svc)) {
      for (const v of (obj(s).volumes as string[] | undefined) ?? []) {
        if (v.startsWith('./')) expect(existsSync(repo(v.split(':')[0])), v).toBe(true);
      }
    }
  });
});

describe('k8s/', () => {
  const files = readdirSync(repo('k8s')).filter((f) => f.endsWith('.yaml'));

  it('every manifest parses and is listed in kustomization.yaml', () => {
    const kustomization = read('k8s/kustomization.yaml');
    for (const f of files.filter((f) => f !== 'kustomization.yaml')) {
      expect(kustomization, `${f} is not in kustomization.yaml`).toMatch(new RegExp(`^  - ${f.replace('.', '\\.')}$`, 'm'));
    }
    const resources = arr(obj(parseAll(kustomization)[0]).resources) as string[];
    for (const r of resources) expect(files, `${r} is listed but missing`).toContain(r);
    for (const f of files.filter((f) => f !== 'kustomization.yaml')) {
      for (const doc of parseAll(read('k8s', f))) {
        const o = obj(doc);
        expect(o.apiVersion, f).toBeTruthy();
        expect(o.kind, f).toBeTruthy();
        expect(obj(o.metadata).name, f).toBeTruthy();
      }
    }
  });

  it('the gateway Deployment, Service, Ingress, PDB and HPA fit together', () => {
    const all = files.flatMap((f) => parseAll(read('k8s', f)).map((d) => obj(d)));
    const find = (kind: string, name: string) => {
      const found = all.find((d) => d.kind === kind && obj(d.metadata).name === name);
      expect(found, `${kind} ${name}`).toBeDefined();
      return found as Obj;
    };
    const deployment = find('Deployment', 'switchboard-gateway');
    const config = obj(find('ConfigMap', 'switchboard-config').data) as Record<string, string>;
    const spec = obj(deployment.spec);
    const pod = obj(obj(spec.template).spec);
    const podLabels = obj(obj(obj(spec.template).metadata).labels);
    expect(podLabels).toMatchObject(obj(obj(spec.selector).matchLabels));
    const [container] = arr(pod.containers).map(obj);
    expect((container.command as string[]).join(' ')).toBe('node services/gateway/dist/main.js');
    const ports = arr(container.ports).map(obj);
    const env = arr(container.env).map(obj);
    const opsPort = ports.find((p) => p.name === 'ops')?.containerPort;
    expect(String(opsPort)).toBe(env.find((e) => e.name === 'OPS_PORT')?.value);
    expect(obj(container.readinessProbe).httpGet).toMatchObject({ path: '/readyz', port: 'ops' });
    expect(obj(container.livenessProbe).httpGet).toMatchObject({ path: '/healthz', port: 'ops' });
    expect(obj(obj(container.resources).requests)).toHaveProperty('cpu');
    expect(obj(obj(container.resources).limits)).toHaveProperty('memory');

    // preStop, then the drain bounded by SHUTDOWN_TIMEOUT_MS, must fit in the grace period.
    const preStop = (obj(obj(obj(container.lifecycle).preStop).exec).command as string[]).join(' ');
    const preStopSec = Number(/^sleep (\d+)$/.exec(preStop)?.[1]);
    const drainSec = Number(config.SHUTDOWN_TIMEOUT_MS) / 1000;
    expect(preStopSec).toBeGreaterThan(0);
    expect(drainSec).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds as number).toBeGreaterThanOrEqual(preStopSec + drainSec + 2);

    const service = obj(find('Service', 'switchboard-gateway').spec);
    expect(podLabels).toMatchObject(obj(service.selector));
    for (const p of arr(service.ports).map(obj)) expect(ports.map((cp) => cp.name)).toContain(p.targetPort);

    const ingress = find('Ingress', 'switchboard-gateway');
    const annotations = obj(obj(ingress.metadata).annotations) as Record<string, string>;
    expect(annotations['nginx.ingress.kubernetes.io/affinity']).toBe('cookie');
    expect(annotations['nginx.ingress.kubernetes.io/session-cookie-name']).toBe('SBSRV');
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(60);
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(60);
    expect(JSON.stringify(ingress.spec)).toContain('"name":"switchboard-gateway"');

    expect(podLabels).toMatchObject(obj(obj(obj(find('PodDisruptionBudget', 'switchboard-gateway').spec).selector).matchLabels));
    expect(obj(obj(find('HorizontalPodAutoscaler', 'switchboard-gateway').spec).scaleTargetRef)).toMatchObject({
      kind: 'Deployment',
      name: 'switchboard-gateway',
    });

    // The example Secret is a placeholder the services refuse, never a usable secret.
    const secret = obj(find('Secret', 'switchboard-secrets').stringData) as Record<string, string>;
    expect(Buffer.byteLength(secret.JWT_SECRET ?? '')).toBeLessThan(32);
    for (const key of (secret.ADMIN_API_KEYS ?? '').split(',')) expect(key.length).toBeLessThan(16);
  });

  it('Redis has maxmemory below its memory limit, and noeviction', () => {
    const redis = files.flatMap((f) => parseAll(read('k8s', f)).map((d) => obj(d))).find((d) => d.kind === 'StatefulSet' && obj(d.metadata).name === 'redis');
    const template = obj(obj(obj(redis).spec).template);
    const [container] = arr(obj(template.spec).containers).map(obj);
    const args = (container?.args as string[]).join(' ');
    expect(args).toContain('--maxmemory-policy noeviction');
    const maxmemoryMb = Number(/--maxmemory (\d+)mb/.exec(args)?.[1]);
    const limitMi = Number(/^(\d+)Gi$/.exec(String(obj(obj(container?.resources).limits).memory))?.[1]) * 1024;
    expect(maxmemoryMb).toBeGreaterThan(0);
    expect(maxmemoryMb).toBeLessThan(limitMi);
  });
});

// ---------------------------------------------------------------- startHaproxy

interface Backend {
  name: string;
  address: string;
  ready: boolean;
  close(): Promise<void>;
}

/** A stand-in gateway: `/readyz` as told, anything else answers its name and what it saw. */
async function startBackend(name: string): Promise<Backend> {
  const sockets = new Set<Socket>();
  const backend = { name, address: '', ready: true, close: async () => {} };
  const server: Server = createServer((req, res) => {
    if (req.url === '/readyz') {
      res.writeHead(backend.ready ? 200 : 503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name, xff: req.headers['x-forwarded-for'] ?? null }));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, socket: Socket) => {
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('data', (d) => socket.write(`${name}:${d.toString()}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  return backend;
}

interface Reply {
  status: number;
  name?: string;
  xff?: string | null;
  cookie?: string;
}

function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        const json = String(res.headers['content-type']).startsWith('application/json');
        const parsed = json ? (JSON.parse(body) as { name: string; xff: string | null }) : undefined;
        resolve({ status: res.statusCode ?? 0, ...parsed, ...sbsrv(res.headers) });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

function sbsrv(headers: IncomingHttpHeaders): { cookie?: string } {
  const cookie = (headers['set-cookie'] ?? []).map((c) => /^SBSRV=([^;]*)/.exec(c)?.[1]).find(Boolean);
  return cookie ? { cookie } : {};
}

/** Repeats `attempt` until `done` holds for its result or the deadline passes. */
async function until<T>(attempt: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | Error;
  for (;;) {
    try {
      last = await attempt();
      if (done(last)) return last;
    } catch (err) {
      last = err as Error;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('startHaproxy', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((c) => c()));
  });

  async function setUp(checkIntervalMs: number) {
    const a = await startBackend('a');
    const b = await startBackend('b');
    const lb: HaproxyHandle = await startHaproxy({ gateways: [a.address, b.address], checkIntervalMs, stats: true });
    cleanups.push(() => lb.stop(), () => a.close(), () => b.close());
    // The first answer pins the client with a cookie; find out which backend it named.
    const first = await get(`${lb.url}/`);
    expect(first.status).toBe(200);
    expect(first.cookie).toMatch(/^gw[12]$/);
    const [pinned, other] = first.name === 'a' ? [a, b] : [b, a];
    return { lb, pinned, other, cookie: first.cookie as string };
  }

  it('uses only the given gateway slots', async () => {
    const { lb } = await setUp(200);
    const csv = await new Promise<string>((resolve, reject) => {
      request(`${lb.statsUrl}/stats;csv`, { agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      })
        .on('error', reject)
        .end();
    });
    const servers = csv
      .split('\n')
      .map((line) => line.split(','))
      .filter(([proxy, server]) => proxy === 'gateways' && server !== 'BACKEND')
      .map(([, server]) => server);
    expect(servers).toEqual(['gw1', 'gw2']);
    expect((await get(`${lb.statsUrl}/readyz`)).status).toBe(200);
  });

  it('keeps a client with the SBSRV cookie on one gateway and spreads new clients', async () => {
    const { lb, pinned, other, cookie } = await setUp(200);
    for (let i = 0; i < 8; i++) {
      expect((await get(`${lb.url}/`, { cookie: `SBSRV=${cookie}` })).name).toBe(pinned.name);
    }
    // Without the cookie, new clients are balanced: the other gateway gets some too.
    const fresh = await until(() => get(`${lb.url}/`), (r) => r.name === other.name);
    expect(fresh.cookie).not.toBe(cookie);
  });

  it('replaces X-Forwarded-For with the real client address', async () => {
    const { lb } = await setUp(200);
    const r = await get(`${lb.url}/`, { 'x-forwarded-for': '203.0.113.9' });
    expect(r.xff).toBe('127.0.0.1');
  });

  it('passes websocket upgrades through', async () => {
    const { lb, pinned, cookie } = await setUp(200);
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = request(`${lb.url}/socket.io/?EIO=4&transport=websocket`, {
        agent: false,
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
          cookie: `SBSRV=${cookie}`,
        },
      });
      req.on('upgrade', (res, socket) => {
        expect(res.statusCode).toBe(101);
        socket.once('data', (d: Buffer) => {
          resolve(d.toString());
          socket.destroy();
        });
        socket.write('ping');
      });
      req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
      req.on('error', reject);
      req.end();
    });
    expect(echoed).toBe(`${pinned.name}:ping`);
  });

  it('moves a pinned client to another gateway when its gateway stops being ready (drain)', async () => {
    const { lb, pinned, other, cookie } = await setUp(100);
    pinned.ready = false;
    const moved = await until(() => get(`${lb.url}/`, { cookie: `SBSRV=${cookie}` }), (r) => r.name === other.name);
    expect(moved.cookie).toBeDefined();
    expect(moved.cookie).not.toBe(cookie);
    expect((await get(`${lb.url}/`, { cookie: `SBSRV=${moved.cookie}` })).name).toBe(other.name);
  });

  it('redispatches a pinned client whose gateway died, before health checks notice', async () => {
    // Checks every minute: only `option redispatch` can move the client within the deadline.
    const { lb, pinned, other, cookie } = await setUp(60_000);
    await pinned.close();
    const moved = await until(
      () => get(`${lb.url}/`, { cookie: `SBSRV=${cookie}` }),
      (r) => r.status === 200 && r.name === other.name,
    );
    expect(moved.cookie).toBeDefined();
    expect(moved.cookie).not.toBe(cookie);
  });
});
