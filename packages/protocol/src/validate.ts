import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { SwitchboardError } from './errors.js';
import { clientEventSchemas, NotificationJob, type ClientEventName } from './schemas.js';
import type { NotificationJob as NotificationJobData } from './schemas.js';
import { NOTIFICATION_DATA_MAX_BYTES } from './constants.js';

export interface Validator<T> {
  (value: unknown): value is T;
  /** Throws `SwitchboardError('INVALID_PAYLOAD')` naming the first bad field. */
  assert(value: unknown): asserts value is T;
  /** The `INVALID_PAYLOAD` error for a value that failed the check. */
  explain(value: unknown): SwitchboardError;
}

/** Compiles a schema once into a fast checker with readable errors. */
export function compile<S extends TSchema>(schema: S): Validator<Static<S>> {
  const check: TypeCheck<S> = TypeCompiler.Compile(schema);
  const fn = ((value: unknown) => check.Check(value)) as Validator<Static<S>>;
  fn.explain = (value: unknown) => {
    const first = check.Errors(value).First();
    const path = first?.path ? first.path : '/';
    return new SwitchboardError('INVALID_PAYLOAD', `${path}: ${first?.message ?? 'invalid value'}`, { path });
  };
  fn.assert = (value: unknown) => {
    if (!check.Check(value)) throw fn.explain(value);
  };
  return fn;
}

export type ClientValidators = { [K in ClientEventName]: Validator<Static<(typeof clientEventSchemas)[K]>> };

let clientValidators: ClientValidators | undefined;
/** Compiled validators of every client→server payload. */
export function clientEventValidators(): ClientValidators {
  clientValidators ??= Object.fromEntries(
    Object.entries(clientEventSchemas).map(([k, s]) => [k, compile(s)]),
  ) as ClientValidators;
  return clientValidators;
}

const notificationJobValidator: Validator<NotificationJobData> = compile(NotificationJob);

/** Byte length of a value as JSON; `Infinity` when it cannot be serialized. */
export function jsonSize(value: unknown): number {
  try {
    const s = JSON.stringify(value);
    if (s === undefined) return 0;
    return typeof Buffer === 'undefined' ? new TextEncoder().encode(s).length : Buffer.byteLength(s);
  } catch {
    return Infinity;
  }
}

/** Validates notification job data (SPEC §6); throws `SwitchboardError` with the reason. */
export function assertNotificationJob(value: unknown): asserts value is NotificationJobData {
  notificationJobValidator.assert(value);
  if (value.data !== undefined && jsonSize(value.data) > NOTIFICATION_DATA_MAX_BYTES) {
    throw new SwitchboardError('PAYLOAD_TOO_LARGE', `/data: larger than ${NOTIFICATION_DATA_MAX_BYTES} bytes as JSON`);
  }
}
