import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '@switchboard/observability';
import { keys } from '@switchboard/store';
import { randomKeyPrefix } from '@switchboard/testkit';
import { startAdmin, type TestAdmin } from './helpers.js';

describe('a failing Redis command in a request', () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  let admin: TestAdmin;
  const prefix = randomKeyPrefix();

  beforeAll(async () => {
    admin = await startAdmin({
      redis: inject('redis'),
      keyPrefix: prefix,
      logger: createLogger({ service: 'admin', level: 'error', destination }),
    });
  });
  afterAll(async () => {
    await admin?.redis.del(keys(prefix).history('public:wrongtype'));
    await admin?.close();
  });

  it('is logged through Fastify without the payload the command carried', async () => {
    // the room's history key holds a string: the append script's XADD fails with WRONGTYPE, and the
    // script call's arguments hold the message
    await admin.redis.set(keys(prefix).history('public:wrongtype'), 'not a stream');
    const marker = `secret-payload-${randomUUID()}`;
    const res = await admin.call('POST', `/v1/rooms/${encodeURIComponent('public:wrongtype')}/messages`, {
      body: { data: { marker } },
    });
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.body)).not.toContain('WRONGTYPE');
    const logged = lines.map((l) => JSON.parse(l) as { msg?: string; err?: Record<string, unknown> });
    const failure = logged.find((l) => l.msg === 'request failed');
    expect(failure?.err).toMatchObject({ type: 'ReplyError', message: expect.stringMatching(/WRONGTYPE/), command: expect.stringMatching(/^eval/) });
    expect(lines.join('\n')).not.toContain(marker);
  });
});
