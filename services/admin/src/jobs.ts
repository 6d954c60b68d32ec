import type { Static } from '@sinclair/typebox';
import type { TargetKind } from './schemas.js';

const TARGETS = { userId: 'user', userIds: 'users', room: 'room', broadcast: 'broadcast' } as const;

/** What operators see of a notification job's data: its type and target kind, never its contents. */
export interface JobSummary {
  type?: string;
  target?: Static<typeof TargetKind>;
}

/** The type (at most 64 characters) and target kind of a job's data, whatever shape it has. */
export function jobSummary(data: unknown): JobSummary {
  const out: JobSummary = {};
  if (typeof data !== 'object' || data === null) return out;
  const { type, to } = data as { type?: unknown; to?: unknown };
  if (typeof type === 'string') out.type = type.slice(0, 64);
  if (typeof to === 'object' && to !== null) {
    const key = (Object.keys(TARGETS) as (keyof typeof TARGETS)[]).find((k) => k in to);
    if (key) out.target = TARGETS[key];
  }
  return out;
}
