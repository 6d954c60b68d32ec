/**
 * Every schema of the admin API, in one place: Fastify validates requests with them, serializes
 * responses with them, and @fastify/swagger turns them into the OpenAPI document.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  JsonData,
  MessageId,
  MessageType,
  NotificationJob,
  PresenceStatus,
  ROOM_NAME_MAX_LENGTH,
  RoomName,
  UserId,
} from '@switchboard/protocol';
import { ADMIN_ERROR_CODES, STATUS_OF, type AdminErrorCode } from './errors.js';

const strict = { additionalProperties: false } as const;
const Millis = (description: string) => Type.Integer({ minimum: 0, description: `${description}, ms since the epoch` });
const Count = (description?: string) => Type.Integer({ minimum: 0, ...(description ? { description } : {}) });

/** Items per page when `limit` is not given. */
export const DEFAULT_PAGE = 100;
/** Failed jobs listed when `limit` is not given. */
export const DEFAULT_FAILED_JOBS = 20;

const Limit = Type.Integer({ minimum: 1, maximum: 1000, default: DEFAULT_PAGE, description: 'page size' });

// ---- errors ----

export const ErrorResponse = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.Union(ADMIN_ERROR_CODES.map((c) => Type.Literal(c))),
        message: Type.String(),
        details: Type.Optional(Type.Unknown()),
      },
      strict,
    ),
  },
  { ...strict, description: 'Error' },
);

/** Error responses a route can answer, by status, for the OpenAPI document. */
export function errorResponses(...codes: AdminErrorCode[]): Record<number, typeof ErrorResponse> {
  const out: Record<number, typeof ErrorResponse> = {};
  for (const code of codes) out[STATUS_OF[code]] = ErrorResponse;
  return out;
}

/** What every `/v1` route can answer besides its own errors. */
export const AUTH_ERRORS: AdminErrorCode[] = ['UNAUTHORIZED', 'FORBIDDEN', 'RATE_LIMITED', 'UNAVAILABLE'];

/** OpenAPI security requirement of the `/v1` routes. */
export const BEARER = [{ bearer: [] }];

// ---- shared shapes ----

export const QueueCounts = Type.Object(
  {
    waiting: Count('waiting, paused and prioritized jobs'),
    active: Count(),
    delayed: Count(),
    failed: Count(),
    completed: Count(),
  },
  strict,
);

export const Member = Type.Object(
  { userId: Type.String(), name: Type.Optional(Type.String()), status: PresenceStatus },
  strict,
);

const NextCursor = Type.Optional(Type.String({ description: 'pass as `cursor` for the next page; absent on the last page' }));

// ---- ops ----

export const HealthResponse = Type.Object({ status: Type.String() }, { ...strict, description: 'Status' });

// ---- stats ----

export const StatsResponse = Type.Object(
  {
    pods: Type.Array(
      Type.Object(
        {
          id: Type.String({ description: 'the pod\'s `POD_ID`' }),
          instance: Type.String({
            description: 'the gateway process: a pod restarted under the same `POD_ID` is a new instance, and the old one is reaped',
          }),
          connections: Count(),
          startedAt: Millis('pod start (Redis time)'),
          lastHeartbeatAt: Millis('last heartbeat (Redis time)'),
        },
        strict,
      ),
    ),
    connections: Count('sockets connected across the cluster'),
    usersOnline: Count('users with at least one socket'),
    rooms: Count('rooms with at least one member'),
    queue: QueueCounts,
  },
  { ...strict, description: 'Cluster counts' },
);

// ---- users ----

export const UsersQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ ...UserId, description: '`nextCursor` of the previous page' })),
    limit: Type.Optional(Limit),
  },
  strict,
);

export const UsersResponse = Type.Object(
  { users: Type.Array(Member), nextCursor: NextCursor },
  { ...strict, description: 'A page of online users' },
);

export const UserParams = Type.Object({ userId: UserId }, strict);

export const UserResponse = Type.Object(
  {
    userId: Type.String(),
    name: Type.Optional(Type.String()),
    online: Type.Boolean(),
    status: PresenceStatus,
    text: Type.Optional(Type.String({ description: 'status text' })),
    lastSeen: Type.Optional(Millis('last connect or disconnect')),
    sockets: Type.Array(Type.Object({ id: Type.String(), pod: Type.String(), connectedAt: Millis('connection') }, strict)),
    rooms: Type.Array(Type.String(), { description: 'rooms any of the user’s sockets is in' }),
  },
  { ...strict, description: 'The user' },
);

export const DisconnectResponse = Type.Object(
  { userId: Type.String(), sockets: Count('sockets the user had when asked') },
  { ...strict, description: 'Disconnect sent to every pod' },
);

// ---- rooms ----

/** A room name, URL-encoded in paths (`encodeURIComponent`: `:` → `%3A`, `/` → `%2F`). */
export const RoomParams = Type.Object({ room: RoomName }, strict);

export const RoomsQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ ...RoomName, description: '`nextCursor` of the previous page' })),
    limit: Type.Optional(Limit),
    prefix: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._:@/-]*$',
        maxLength: ROOM_NAME_MAX_LENGTH,
        description: 'only rooms whose name starts with this, e.g. `public:`',
      }),
    ),
  },
  strict,
);

export const RoomsResponse = Type.Object(
  { rooms: Type.Array(Type.Object({ room: Type.String(), members: Count('distinct users') }, strict)), nextCursor: NextCursor },
  { ...strict, description: 'A page of rooms' },
);

export const RoomQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ ...UserId, description: '`nextCursor` of the previous page' })),
    limit: Type.Optional(Limit),
  },
  strict,
);

export const RoomResponse = Type.Object(
  { room: Type.String(), members: Count('distinct users'), users: Type.Array(Member), nextCursor: NextCursor },
  { ...strict, description: 'The room and a page of its users' },
);

export const PublishBody = Type.Object(
  { type: Type.Optional(MessageType), data: JsonData },
  { ...strict, required: ['data'], description: 'published as `room:message` from `{ userId: "system" }`' },
);

export const PublishResponse = Type.Object(
  { id: MessageId, ts: Millis('server time of the message') },
  { ...strict, description: 'Stored and sent' },
);

// ---- notifications ----

export const NotificationBody = Type.Composite([NotificationJob], { ...strict, description: 'a notification job (SPEC §6)' });

export const NotificationResponse = Type.Object(
  {
    id: Type.String({ description: 'the notification id clients see and `notification:read` takes' }),
    jobId: Type.String({ description: 'the BullMQ job id, for the queue routes' }),
  },
  { ...strict, description: 'Enqueued' },
);

export const QueueQuery = Type.Object(
  {
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_FAILED_JOBS, description: 'failed jobs listed' }),
    ),
  },
  strict,
);

export const TargetKind = Type.Union([
  Type.Literal('user'),
  Type.Literal('users'),
  Type.Literal('room'),
  Type.Literal('broadcast'),
]);

export const FailedJob = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    failedReason: Type.String(),
    attemptsMade: Count(),
    timestamp: Millis('creation'),
    finishedOn: Type.Optional(Millis('last failure')),
    type: Type.Optional(Type.String({ description: 'the notification type, when the job has one' })),
    target: Type.Optional(TargetKind),
  },
  { ...strict, description: 'a failed job, without its data' },
);

export const QueueResponse = Type.Object(
  { counts: QueueCounts, failed: Type.Array(FailedJob, { description: 'most recently failed first' }) },
  { ...strict, description: 'Counts and recent failed jobs' },
);

export const JobParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }) }, strict);

export const RetryResponse = Type.Object({ id: Type.String() }, { ...strict, description: 'Moved back to waiting' });

// ---- webhooks (SPEC §7a) ----

export const WebhookEndpointState = Type.Object(
  {
    id: Type.String({ description: 'the endpoint id (a hash of its URL): its batch jobs are named `<id>-…`' }),
    url: Type.String({ description: 'the URL without credentials or query' }),
    since: Millis('announced by a dispatcher'),
    pending: Count('events waiting for delivery'),
    inflight: Type.Optional(Type.String({ description: 'the batch job delivering now, or retrying' })),
    lastDeliveredAt: Type.Optional(Millis('last 2xx answer')),
    lastError: Type.Optional(Type.String({ description: 'why the last attempt failed, until a delivery' })),
    failingSince: Type.Optional(Millis('first failure since the last delivery')),
  },
  strict,
);

export const WebhooksResponse = Type.Object(
  { endpoints: Type.Array(WebhookEndpointState, { description: 'the endpoints the dispatchers deliver to' }) },
  { ...strict, description: 'Webhook endpoints and their delivery state' },
);

export const FailedWebhookBatch = Type.Object(
  {
    id: Type.String(),
    name: Type.String({ description: '`dropped`: events set aside beyond WEBHOOK_MAX_PENDING' }),
    failedReason: Type.String(),
    attemptsMade: Count(),
    timestamp: Millis('creation'),
    finishedOn: Type.Optional(Millis('last failure')),
    endpoint: Type.String({ description: 'the endpoint id' }),
    events: Count('events in the batch'),
    firstSeq: Type.Optional(Type.Integer({ description: 'seq of its first event' })),
    lastSeq: Type.Optional(Type.Integer({ description: 'seq of its last event' })),
  },
  { ...strict, description: 'a failed webhook batch, without its events' },
);

export const WebhookQueueResponse = Type.Object(
  { counts: QueueCounts, failed: Type.Array(FailedWebhookBatch, { description: 'most recently failed first' }) },
  { ...strict, description: 'Counts and recent failed batches of the webhooks queue' },
);

// ---- operator console ----

/** OpenAPI security requirement of the console's session routes. */
export const CONSOLE_SESSION = [{ consoleSession: [] }];

export const ConsoleSignInBody = Type.Object(
  {
    credential: Type.String({
      minLength: 1,
      maxLength: 16_384,
      description: 'an admin API key (`ADMIN_API_KEYS`) or an access token whose `roles` include `admin`',
    }),
  },
  { ...strict, description: 'Sign in' },
);

export const ConsoleSessionResponse = Type.Object(
  {
    principal: Type.String({ description: 'who is signed in: `api-key#<n>` (by position) or `token:<sub>`' }),
    expiresAt: Millis('end of the session'),
    csrfToken: Type.String({
      description: 'to send as `X-CSRF-Token` on every state-changing request made with the session cookie',
    }),
    heartbeatIntervalMs: Count('the gateways’ heartbeat interval (`HEARTBEAT_INTERVAL_MS`), which tells live pods from late ones'),
  },
  { ...strict, description: 'The console session' },
);

export type StatsResponse = Static<typeof StatsResponse>;
export type UserResponse = Static<typeof UserResponse>;
export type FailedJob = Static<typeof FailedJob>;

/** The response schemas by name, for tests that check real answers against them. */
export const responseSchemas = {
  ErrorResponse,
  HealthResponse,
  StatsResponse,
  UsersResponse,
  UserResponse,
  DisconnectResponse,
  RoomsResponse,
  RoomResponse,
  PublishResponse,
  NotificationResponse,
  QueueResponse,
  RetryResponse,
  ConsoleSessionResponse,
} satisfies Record<string, TSchema>;
