import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

/**
 * Tests import the workspace packages' TypeScript sources (the `switchboard:source` export
 * condition), so an edit is tested without a build. Services started as processes run their
 * built `dist/main.js`: `npm test` builds first.
 */
const conditions = ['switchboard:source', ...defaultServerConditions];

const ALL = ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'tests/*/test/**/*.test.ts'];

/**
 * The tests of what depends on the Redis topology (SPEC §8): rooms across pods, presence,
 * reaping, history and recovery, notifications, admin stats, stock clients, and lifecycle events
 * (SPEC §7a). They run on standalone Redis with everything else, and again on a Sentinel group and
 * on a Redis Cluster (sharded pub/sub, its default there), each started by the global setup for
 * its project.
 */
const TOPOLOGY_TESTS = [
  'services/gateway/test/cluster.test.ts',
  'services/gateway/test/presence.test.ts',
  'services/gateway/test/registry.test.ts',
  'services/gateway/test/python-client.test.ts',
  'packages/client/test/resume.test.ts',
  'services/dispatcher/test/end-to-end.test.ts',
  'services/admin/test/cluster.test.ts',
  'tests/harness/test/lifecycle-events.test.ts',
];

const project = (name: 'standalone' | 'sentinel' | 'cluster', include: string[]) => ({
  extends: true as const,
  test: { name, include, globalSetup: ['./vitest.global-setup.ts'] },
});

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    projects: [project('standalone', ALL), project('sentinel', TOPOLOGY_TESTS), project('cluster', TOPOLOGY_TESTS)],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: 'reports/vitest.json' },
  },
});
