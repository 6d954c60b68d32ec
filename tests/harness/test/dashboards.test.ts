import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NOTIFICATIONS_QUEUE } from '@switchboard/protocol';
import { closeRedis, createRedisClient, isCluster, queuePrefix, type RedisClient } from '@switchboard/store';
import { eventually, freePort, spawnOwned, startHaproxy, stopProcess, type HaproxyHandle } from '@switchboard/testkit';
import {
  startAdminProcess,
  startCluster,
  startDispatcherProcess,
  startWebhookReceiver,
  type Cluster,
  type WebhookReceiver,
  type ProcessHandle,
  type TestClient,
} from '../src/index.js';
import { promqlSelectors, type PromqlParts } from './promql.js';

const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));
const API_KEY = 'dashboards-test-key-0123456789abcdef';
const WEBHOOK_SECRET = 'dashboards-test-webhook-secret-0123456789';

/**
 * Grafana's variables as a dashboard in the compose cluster resolves them (its data source
 * scrapes every 10 s: `$__rate_interval` is at least 4 scrape intervals).
 */
const GRAFANA_VARIABLES: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '15s',
  __range: '1h',
};

/**
 * What each alert of alerts.yml does on the healthy test cluster the test drives (one refused
 * handshake, one invalid job, no dead pod):
 * - `quiet`: its expression returns nothing;
 * - `measured`: a latency threshold, which a loaded machine may cross: the value it compares
 *   (the expression without its final `> n`) must be a real number instead.
 */
const ALERTS: Record<string, { healthy: 'quiet' | 'measured'; reason: string }> = {
  SwitchboardTargetDown: { healthy: 'quiet', reason: 'every scrape target is up' },
  SwitchboardNoGatewayReady: { healthy: 'quiet', reason: 'both gateways pass their readiness check behind HAProxy' },
  SwitchboardHandshakeFailuresHigh: { healthy: 'quiet', reason: 'one refused handshake is under both thresholds' },
  SwitchboardEventErrorRatioHigh: { healthy: 'quiet', reason: 'no client event fails on the server' },
  SwitchboardEventLatencyHigh: { healthy: 'measured', reason: 'events take milliseconds, unless the machine stalls' },
  SwitchboardGatewayPodsReaped: { healthy: 'quiet', reason: 'no gateway dies' },
  SwitchboardHeartbeatStale: { healthy: 'quiet', reason: 'every gateway beats every 2.5 s' },
  SwitchboardDispatcherJobsFailing: { healthy: 'quiet', reason: 'the one bad job is invalid, not failed after its retries' },
  SwitchboardQueueBacklog: { healthy: 'quiet', reason: 'the dispatcher keeps up' },
  SwitchboardQueueFailedJobsGrowing: { healthy: 'quiet', reason: 'one failed job is under the threshold of 10' },
  SwitchboardDeliveryLatencyHigh: { healthy: 'measured', reason: 'notifications arrive within milliseconds, unless the machine stalls' },
  SwitchboardWebhookEndpointFailing: { healthy: 'quiet', reason: 'the test receiver answers every request' },
  SwitchboardWebhookBacklog: { healthy: 'quiet', reason: 'the receiver keeps up' },
  SwitchboardWebhookEventsSetAside: { healthy: 'quiet', reason: 'nothing goes beyond WEBHOOK_MAX_PENDING' },
  SwitchboardLifecycleEventsLost: { healthy: 'quiet', reason: 'the dispatcher relays the outbox' },
  SwitchboardEventRelayBehind: { healthy: 'quiet', reason: 'the outbox is relayed as it fills' },
};

/**
 * Selectors inside an alert expression that match nothing on a healthy cluster, and why. Their
 * metric must still exist, with the labels they select on.
 */
const EMPTY_SELECTORS: Record<string, string> = {
  'switchboard_gateway_events_total{result=~"(?i)error|internal|unavailable"}': 'no client event fails on the server',
};

/** Dashboard queries that may return nothing, and why (none today: each is driven by the traffic below). */
const EMPTY_PANEL_QUERIES: Record<string, string> = {};

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string; legendFormat?: string }[];
  panels?: Panel[];
}

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

interface PrometheusHandle {
  url: string;
  stop(): Promise<void>;
}

/**
 * Debian's `prometheus` on a free loopback port with a temporary TSDB, killed by `stop()`.
 * The port is retried when another process takes it first.
 */
async function startPrometheus(config: (selfTarget: string) => unknown, dir: string): Promise<PrometheusHandle> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const file = join(dir, 'prometheus.yml');
    writeFileSync(file, stringify(config(`127.0.0.1:${port}`)));
    const child: ChildProcess = spawnOwned(
      'prometheus',
      [`--config.file=${file}`, `--storage.tsdb.path=${join(dir, `data-${attempt}`)}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(-1));
    });
    const stop = () => stopProcess(child);
    const url = `http://127.0.0.1:${port}`;
    try {
      await Promise.race([
        eventually(async () => (await fetch(`${url}/-/ready`)).ok, { timeoutMs: 20_000, intervalMs: 100, what: 'Prometheus to be ready' }),
        exited.then((code) => {
          throw new Error(`prometheus exited (${code}):\n${output}`);
        }),
      ]);
      return { url, stop };
    } catch (err) {
      await stop();
      lastError = err as Error;
      if (!/address already in use/i.test(lastError.message)) throw lastError;
    }
  }
  throw lastError ?? new Error('prometheus did not start');
}

/** The labels a legend format names: `{{pod}}` → `pod`. */
const legendLabels = (format = '') => [...format.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1]!);

function substituteVariables(expr: string): string {
  const out = expr.replace(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?/g, (whole, name: string) => GRAFANA_VARIABLES[name] ?? whole);
  if (out.includes('$')) throw new Error(`a Grafana variable has no value in this test: ${expr}`);
  return out;
}

describe('the shipped dashboard and alerts against a live Prometheus', () => {
  let cluster: Cluster;
  let lb: HaproxyHandle;
  let dispatcher: ProcessHandle;
  let admin: ProcessHandle;
  let prometheus: PrometheusHandle | undefined;
  let queue: Queue | undefined;
  let receiver: WebhookReceiver | undefined;
  let connection: RedisClient | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'sb-prometheus-'));
  const clients: TestClient[] = [];
  /** The job of every target, once all were up. */
  let scraped: string[] = [];

  beforeAll(async () => {
    // The default heartbeat: at the harness's 1 s, a gateway stalled for 2 s on a busy machine would
    // be reaped, and SwitchboardGatewayPodsReaped would rightly fire.
    // Lifecycle events on, to a webhook receiver: their panels and alerts have series.
    receiver = await startWebhookReceiver(WEBHOOK_SECRET);
    cluster = await startCluster({ redis: inject('redis'), gateways: 2, processes: true, env: { HEARTBEAT_INTERVAL_MS: '5000', EVENTS_QUEUE: 'true' } });
    lb = await startHaproxy({ gateways: cluster.gateways.map((g) => `127.0.0.1:${g.port}`), stats: true });
    dispatcher = await startDispatcherProcess({
      redis: cluster.redisEnv,
      keyPrefix: cluster.keyPrefix,
      env: { EVENTS_QUEUE: 'true', WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET },
    });
    admin = await startAdminProcess({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix, apiKeys: [API_KEY] });

    // The shipped scrape configuration with its job names and relabelings, aimed at this cluster.
    const shipped = parse(readFileSync(repo('deploy/prometheus/prometheus.yml'), 'utf8')) as {
      global?: Record<string, unknown>;
      scrape_configs: { job_name: string; scrape_interval?: string; static_configs?: { targets: string[] }[] }[];
    };
    const targets = (self: string): Record<string, string[]> => ({
      'switchboard-gateway': cluster.gateways.map((g) => `127.0.0.1:${g.opsPort}`),
      'switchboard-dispatcher': [`127.0.0.1:${dispatcher.port}`],
      'switchboard-admin': [`127.0.0.1:${admin.port}`],
      'switchboard-lb': [new URL(lb.statsUrl!).host],
      prometheus: [self],
    });
    prometheus = await startPrometheus(
      (self) => ({
        ...shipped,
        global: { ...shipped.global, scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
        rule_files: [repo('deploy/prometheus/alerts.yml')],
        scrape_configs: shipped.scrape_configs.map((job) => {
          const aimed = targets(self)[job.job_name];
          if (!aimed) throw new Error(`the test has no target for the shipped job "${job.job_name}"`);
          const { scrape_interval: _interval, ...rest } = job;
          return { ...rest, static_configs: [{ targets: aimed }] };
        }),
      }),
      dir,
    );

    // Traffic once every target has been scraped, so rate() sees it happen.
    scraped = await eventually(
      async () => {
        const res = await fetch(`${prometheus!.url}/api/v1/targets?state=active`);
        const { data } = (await res.json()) as { data: { activeTargets: { labels: { job: string }; health: string }[] } };
        const up = data.activeTargets.filter((t) => t.health === 'up');
        return up.length > 0 && up.length === data.activeTargets.length ? up.map((t) => t.labels.job) : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'every target to be up' },
    );
    for (const [i, sub] of ['dash-ann', 'dash-bob', 'dash-cid'].entries()) {
      const c = await cluster.connect({ sub, gateway: i % 2 });
      clients.push(c);
      await c.emitWithAck('room:join', { room: 'public:dashboards' });
    }
    const [ann, bob, cid] = clients as [TestClient, TestClient, TestClient];
    for (let i = 0; i < 5; i++) await ann.emitWithAck('room:publish', { room: 'public:dashboards', data: { i } });
    await bob.emitWithAck('presence:watch', { userIds: ['dash-ann'] });
    await bob.emitWithAck('room:join', { room: 'private:not-yours' }); // refused: forbidden
    await cluster.refused({ sub: 'dash-mallory', token: 'not-a-token' }); // refused: auth_invalid
    cid.close(); // a disconnection
    for (const userId of ['dash-ann', 'dash-bob']) {
      const res = await fetch(`${admin.url}/v1/notifications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: { userId }, type: 'dash.test', title: 'hello' }),
      });
      expect(res.status).toBe(202);
    }
    connection = createRedisClient(cluster.redisConfig, 'test-queue', { warn: () => {} });
    queue = new Queue(NOTIFICATIONS_QUEUE, { connection, prefix: queuePrefix(cluster.keyPrefix, isCluster(connection)) });
    queue.on('error', () => {});
    const bad = await queue.add('notification', { to: { userId: 'dash-ann' } }, { attempts: 1 }); // no type: invalid
    await eventually(async () => (await bad.getState()) === 'failed', { what: 'the invalid job to fail' });

    // A labelled series is born with its first observation, which rate() cannot see: once
    // Prometheus holds the events' series, the same events again.
    for (const series of [
      'switchboard_gateway_event_duration_seconds_count{event="room:publish"}',
      'switchboard_events_relayed_total{type="member.added"}',
      'switchboard_webhook_delivery_latency_seconds_count',
    ]) {
      await eventually(async () => (await query(series)).length > 0, { timeoutMs: 10_000, intervalMs: 100, what: `${series} in Prometheus` });
    }
    for (let i = 0; i < 5; i++) await ann.emitWithAck('room:publish', { room: 'public:dashboards', data: { again: i } });
    await bob.emitWithAck('presence:watch', { userIds: ['dash-bob'] });
    await bob.emitWithAck('room:join', { room: 'private:not-yours' });
    await bob.emitWithAck('room:join', { room: 'public:dashboards-again' }); // occupied, added: relayed and posted
    await bob.emitWithAck('room:leave', { room: 'public:dashboards-again' });
    await eventually(() => receiver!.events.some((e) => e.type === 'room.vacated' && e.data.room === 'public:dashboards-again'), {
      what: 'the second round of lifecycle events delivered',
    });
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await prometheus?.stop();
    await queue?.close();
    if (connection) await closeRedis(connection);
    await Promise.allSettled([admin?.stop(), dispatcher?.stop(), lb?.stop()]);
    await cluster?.stop();
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function query(expr: string): Promise<Series[]> {
    const res = await fetch(`${prometheus!.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Series[] } };
    if (body.status !== 'success') throw new Error(`invalid query ${expr}: ${body.error}`);
    if (body.data?.resultType !== 'vector') throw new Error(`${expr} is not an instant vector: ${body.data?.resultType}`);
    return body.data.result;
  }

  it('scrapes every job of the shipped configuration', () => {
    const jobs = scraped;
    expect([...new Set(jobs)].sort()).toEqual(['prometheus', 'switchboard-admin', 'switchboard-dispatcher', 'switchboard-gateway', 'switchboard-lb']);
    expect(jobs.filter((j) => j === 'switchboard-gateway')).toHaveLength(2);
  });

  it('every panel query of the dashboard returns a series, labelled as its legend says', async () => {
    const dashboard = JSON.parse(readFileSync(repo('deploy/grafana/dashboards/switchboard.json'), 'utf8')) as { panels: Panel[] };
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
    const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: substituteVariables(t.expr), legend: t.legendFormat })));
    expect(queries.length).toBeGreaterThan(10);

    const problems = async () => {
      const found: string[] = [];
      for (const q of queries) {
        const series = await query(q.expr);
        const real = series.filter((s) => s.value[1] !== 'NaN');
        if (EMPTY_PANEL_QUERIES[q.expr] !== undefined) continue;
        if (real.length === 0) {
          found.push(`"${q.panel}": ${q.expr} returned ${series.length ? 'only NaN' : 'no series'}`);
          continue;
        }
        for (const label of legendLabels(q.legend)) {
          if (!real.every((s) => label in s.metric)) found.push(`"${q.panel}": legend {{${label}}} is not a label of ${q.expr}`);
        }
      }
      return found;
    };
    // rate() needs two samples after the traffic: wait for them, then every query must hold.
    let last: string[] = [];
    await eventually(
      async () => {
        last = await problems();
        return last.length === 0;
      },
      { timeoutMs: 25_000, intervalMs: 500, what: 'every panel query to return a series' },
    ).catch(() => undefined);
    expect(last).toEqual([]);
  });

  it('every alert expression is valid, fires only as expected, and names metrics and labels that exist', async () => {
    const rules = parse(readFileSync(repo('deploy/prometheus/alerts.yml'), 'utf8')) as { groups: { rules: { alert?: string; expr: string }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules).filter((r): r is { alert: string; expr: string } => r.alert !== undefined);
    expect(alerts.map((a) => a.alert).sort()).toEqual(Object.keys(ALERTS).sort());

    const problems: string[] = [];
    for (const { alert, expr } of alerts) {
      const series = await query(expr);
      const expected = ALERTS[alert]!;
      if (expected.healthy === 'quiet' && series.length > 0) {
        problems.push(`${alert} fires on a healthy cluster (${expected.reason}): ${JSON.stringify(series)}`);
      }
      if (expected.healthy === 'measured') {
        const measure = /^([\s\S]*?)\s*>\s*[0-9.]+\s*$/.exec(expr)?.[1];
        if (!measure) throw new Error(`${alert} is not "<value> > <threshold>": ${expr}`);
        const values = (await query(measure)).filter((v) => v.value[1] !== 'NaN');
        if (values.length === 0) problems.push(`${alert}: ${measure.trim()} has no value`);
      }
      const parts: PromqlParts = promqlSelectors(expr);
      expect(parts.selectors.length, alert).toBeGreaterThan(0);
      const labelsSeen = new Set<string>();
      for (const selector of parts.selectors) {
        const matched = await query(selector.text);
        const metric = await query(selector.metric);
        if (metric.length === 0) {
          problems.push(`${alert}: metric ${selector.metric} does not exist`);
          continue;
        }
        for (const s of metric) for (const label of Object.keys(s.metric)) labelsSeen.add(label);
        for (const label of selector.labels) {
          if (!metric.some((s) => label in s.metric)) problems.push(`${alert}: ${selector.metric} has no label "${label}" (${selector.text})`);
        }
        if (matched.length === 0 && EMPTY_SELECTORS[selector.text] === undefined) {
          problems.push(`${alert}: ${selector.text} matches nothing`);
        }
      }
      for (const label of parts.groupingLabels) {
        if (!labelsSeen.has(label)) problems.push(`${alert}: groups by "${label}", which none of its metrics has`);
      }
    }
    expect(problems).toEqual([]);

    // Prometheus itself evaluates every rule without an error.
    const evaluated = await eventually(
      async () => {
        const res = await fetch(`${prometheus!.url}/api/v1/rules?type=alert`);
        const { data } = (await res.json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
        const all = data.groups.flatMap((g) => g.rules);
        return all.length === alerts.length && all.every((r) => r.health !== 'unknown') ? all : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: 'every rule to be evaluated' },
    );
    expect(evaluated.filter((r) => r.health !== 'ok')).toEqual([]);
  });
});
