import {
  SwitchboardError,
  clientEventValidators,
  type Ack,
  type ClientValidators,
  type ClientEventName,
  type ClientToServerEvents,
  type ErrorBody,
} from '@switchboard/protocol';
import { isRedisUnavailable } from '@switchboard/store';
import type { GatewayContext, HandlerScope } from './context.js';

export type PayloadOf<E extends ClientEventName> = Parameters<ClientToServerEvents[E]>[0];
export type ResultOf<E extends ClientEventName> =
  Parameters<NonNullable<Parameters<ClientToServerEvents[E]>[1]>>[0] extends Ack<infer T> ? T : never;

export type Handler<E extends ClientEventName> = (scope: HandlerScope, payload: PayloadOf<E>) => Promise<ResultOf<E>> | ResultOf<E>;
export type HandlerMap = { [E in ClientEventName]: Handler<E> };

const validators: ClientValidators = clientEventValidators();

/** Events that may be sent without a payload: `emit('session:ping', ack)`. */
const OPTIONAL_PAYLOAD: ReadonlySet<string> = new Set(['session:ping', 'notification:list']);

/** What a socket's event reaches: the socket's scope and the event's arguments (the ack last, if any). */
export type EventListener = (scope: HandlerScope, args: unknown[]) => void;

/**
 * Wraps a handler: rate limit, payload validation, the ack envelope (or `session:error`
 * without a callback), metrics. Anything unexpected becomes `INTERNAL`, logged, never sent.
 * Built once per event for the whole pod: the socket comes with each call, so a connection
 * holds no function of its own.
 */
export function wrap<E extends ClientEventName>(ctx: GatewayContext, event: E, handler: Handler<E>): EventListener {
  const { metrics, logger } = ctx;
  const duration = metrics.eventDuration.labels(event);
  const validator: ClientValidators[ClientEventName] = validators[event];

  const finish = (scope: HandlerScope, start: number, response: Ack<unknown>, ack: ((r: Ack<unknown>) => void) | undefined) => {
    duration.observe((performance.now() - start) / 1000);
    metrics.eventsTotal.inc({ event, result: response.ok ? 'ok' : response.error.code.toLowerCase() });
    if (ack) ack(response);
    else if (!response.ok) scope.socket.emit('session:error', { ...response.error, event });
  };

  const fail = (scope: HandlerScope, err: unknown): Ack<never> => {
    if (err instanceof SwitchboardError) return { ok: false, error: err.toBody() };
    if (isRedisUnavailable(err)) {
      logger.warn({ err, event }, 'event failed: redis unavailable');
      return { ok: false, error: { code: 'UNAVAILABLE', message: 'Temporarily unavailable, retry later' } };
    }
    logger.error({ err, event, socketId: scope.socket.id }, 'event failed');
    return { ok: false, error: { code: 'INTERNAL', message: 'Internal error' } satisfies ErrorBody };
  };

  return (scope, args) => {
    const start = performance.now();
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (last as (r: Ack<unknown>) => void) : undefined;
    let payload = ack ? args[0] === last ? undefined : args[0] : args[0];
    if (!scope.state.bucket.take(start)) {
      finish(scope, start, { ok: false, error: rateLimited(scope) }, ack);
      return;
    }
    if (payload === undefined && OPTIONAL_PAYLOAD.has(event)) payload = {};
    if (!validator(payload)) {
      finish(scope, start, fail(scope, validator.explain(payload)), ack);
      return;
    }
    let result: ReturnType<Handler<E>>;
    try {
      result = handler(scope, payload as PayloadOf<E>);
    } catch (err) {
      finish(scope, start, fail(scope, err), ack);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (data) => finish(scope, start, { ok: true, data }, ack),
        (err: unknown) => finish(scope, start, fail(scope, err), ack),
      );
    } else {
      finish(scope, start, { ok: true, data: result }, ack);
    }
  };
}

/** The socket's event rate is spent: say when the next event will be served. */
function rateLimited(scope: HandlerScope): ErrorBody {
  return { code: 'RATE_LIMITED', message: 'Too many events, slow down', details: { retryAfterMs: scope.state.bucket.retryAfterMs() } };
}

/** Answers events whose name is not part of the protocol. */
export function unknownEvent(ctx: GatewayContext) {
  return (scope: HandlerScope, event: string, args: unknown[]): void => {
    const ack = args[args.length - 1];
    const error: ErrorBody = scope.state.bucket.take() ? { code: 'INVALID_PAYLOAD', message: 'Unknown event' } : rateLimited(scope);
    ctx.metrics.eventsTotal.inc({ event: 'unknown', result: error.code.toLowerCase() });
    if (typeof ack === 'function') (ack as (r: Ack<never>) => void)({ ok: false, error });
    else scope.socket.emit('session:error', { ...error, event: String(event).slice(0, 64) });
  };
}
