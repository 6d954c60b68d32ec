import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '@switchboard/observability';

/** Gateway metrics. Labels are bounded: event names, result codes, disconnect reasons. */
export function createGatewayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    connections: new Gauge({
      name: 'switchboard_gateway_connections',
      help: 'Sockets connected to this pod',
      registers,
    }),
    connectionsTotal: new Counter({
      name: 'switchboard_gateway_connections_total',
      help: 'Handshakes by result (accepted or the refusal code)',
      labelNames: ['result'] as const,
      registers,
    }),
    disconnectionsTotal: new Counter({
      name: 'switchboard_gateway_disconnections_total',
      help: 'Disconnections by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    eventsTotal: new Counter({
      name: 'switchboard_gateway_events_total',
      help: 'Client events by event and result (ok or the error code)',
      labelNames: ['event', 'result'] as const,
      registers,
    }),
    eventDuration: new Histogram({
      name: 'switchboard_gateway_event_duration_seconds',
      help: 'Time to handle a client event, until its ack',
      labelNames: ['event'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    messagesTotal: new Counter({
      name: 'switchboard_gateway_room_messages_total',
      help: 'Room messages published through this pod',
      registers,
    }),
    registryDuration: new Histogram({
      name: 'switchboard_registry_operation_duration_seconds',
      help: 'Time of registry operations in Redis',
      labelNames: ['op'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    reapedSockets: new Counter({
      name: 'switchboard_registry_reaped_sockets_total',
      help: 'Sockets of dead pods removed from the registry by this pod',
      registers,
    }),
    reapedPods: new Counter({
      name: 'switchboard_registry_reaped_pods_total',
      help: 'Dead pods removed from the registry by this pod',
      registers,
    }),
    heartbeatAge: new Gauge({
      name: 'switchboard_registry_heartbeat_age_seconds',
      help: 'Age of the stalest pod heartbeat in the registry, as of this pod\'s last heartbeat',
      registers,
    }),
    pubsubReceived: new Counter({
      name: 'switchboard_pubsub_messages_received_total',
      help: 'Pub/sub messages this pod\'s adapter subscriber received (broadcasts of every pod, the dispatcher and the admin API): with classic pub/sub every pod receives every broadcast, with sharded only those of rooms it holds',
      registers,
    }),
    pubsubErrors: new Counter({
      name: 'switchboard_pubsub_errors_total',
      help: 'Publishes and subscriptions of the adapter that Redis refused or could not take (Redis away): those broadcasts were lost',
      registers,
    }),
    heartbeatFailures: new Counter({
      name: 'switchboard_registry_heartbeat_failures_total',
      help: 'Heartbeats that could not be written',
      registers,
    }),
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

/** Turns a free-text Socket.IO reason into a bounded label value. */
export function reasonLabel(reason: string): string {
  const known = [
    'transport close',
    'transport error',
    'ping timeout',
    'parse error',
    'client namespace disconnect',
    'server namespace disconnect',
    'server shutting down',
    'forced close',
    'forced server close',
  ];
  return known.includes(reason) ? reason.replace(/ /g, '_') : 'other';
}
