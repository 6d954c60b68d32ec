import {
  UnknownSocketError,
  type ConnectResult,
  type DisconnectResult,
  type HeldSocket,
  type InstanceRef,
  type MembershipChange,
  type Registry,
  type RestoreResult,
  type SocketRef,
} from '@switchboard/store';
import type { Logger } from '@switchboard/observability';
import type { PresenceStatus } from '@switchboard/protocol';
import type { GatewayMetrics } from './metrics.js';

export interface PodRegistryDeps {
  registry: Registry;
  instance: InstanceRef;
  logger: Logger;
  metrics: GatewayMetrics;
  /** The sockets this pod holds, as the registry should hold them. */
  held: () => HeldSocket[];
  /** Announces what a restore changed (users back online, memberships back or gone). */
  announce: (result: RestoreResult) => void;
}

/**
 * This pod's view of the registry: its instance, and the one lane that keeps a restore (putting
 * the pod's sockets back after it was reaped while alive, or after Redis lost writes) apart from
 * the pod's own joins, leaves and disconnects, so none of them races it.
 */
export class PodRegistry {
  readonly instance: InstanceRef;
  private readonly registry: Registry;
  private restoring: Promise<void> | undefined;
  private again = false;

  constructor(private readonly deps: PodRegistryDeps) {
    this.registry = deps.registry;
    this.instance = deps.instance;
  }

  /** Whether `connect` can count the user's unread notifications in the same call. */
  get countsUnread(): boolean {
    return this.registry.countsUnread;
  }

  connect(s: SocketRef & { name?: string; maxConnections: number; countUnread?: boolean }): Promise<ConnectResult> {
    return this.timed('connect', () => this.registry.connect({ ...s, instance: this.instance }));
  }

  async join(s: SocketRef, room: string): Promise<MembershipChange> {
    return this.membership('join', () => this.registry.join(s, room));
  }

  async leave(s: SocketRef, room: string): Promise<MembershipChange> {
    return this.membership('leave', () => this.registry.leave(s, room));
  }

  async disconnect(s: SocketRef, rooms: readonly string[]): Promise<DisconnectResult | undefined> {
    await this.restoring;
    return this.timed('disconnect', () => this.registry.disconnect(this.instance, s, rooms));
  }

  setStatus(userId: string, status: PresenceStatus, text?: string): Promise<boolean> {
    return this.timed('status', () => this.registry.setStatus(userId, status, text));
  }

  /** On a clean shutdown, once the pod's sockets are gone (else they are left to the reaper). */
  leaveCluster(): Promise<'removed' | 'left-to-reaper'> {
    return this.timed('leave-cluster', () => this.registry.leaveCluster(this.instance));
  }

  /**
   * Puts this pod's sockets back in the registry, once at a time; a request while one runs makes
   * it run once more when done (what it read may be stale by then). Resolves when the registry
   * holds what the pod holds, or rejects with the last failure.
   */
  restore(): Promise<void> {
    if (this.restoring) {
      this.again = true;
      return this.restoring;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        const held = this.deps.held();
        const result = await this.timed('restore', () => this.registry.restore(this.instance, held));
        if (result.registered || result.dropped.length || result.joined.length || result.left.length) {
          this.deps.logger.warn(
            {
              sockets: held.length,
              registered: result.registered,
              dropped: result.dropped.length,
              joined: result.joined.length,
              left: result.left.length,
            },
            'registry restored to what this pod holds',
          );
        }
        this.deps.announce(result);
      } while (this.again);
    };
    this.restoring = run().finally(() => {
      this.restoring = undefined;
    });
    return this.restoring;
  }

  private async membership(op: 'join' | 'leave', change: () => Promise<MembershipChange>): Promise<MembershipChange> {
    await this.restoring;
    try {
      return await this.timed(op, change);
    } catch (err) {
      if (!(err instanceof UnknownSocketError)) throw err;
      // reaped while alive and not put back yet: put back, then try once more
      await this.restore();
      return this.timed(op, change);
    }
  }

  private async timed<T>(op: string, run: () => Promise<T>): Promise<T> {
    const end = this.deps.metrics.registryDuration.startTimer({ op });
    try {
      return await run();
    } finally {
      end();
    }
  }
}
