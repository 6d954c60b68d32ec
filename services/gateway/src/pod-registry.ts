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
  /** User id → how many of this pod's sockets watch it; the registry's watched index counts the pod once. */
  private readonly watchers = new Map<string, number>();

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

  /**
   * Counts one more socket of this pod watching each of `userIds`; the users no other socket of
   * the pod watched yet are added to the registry's watched index before this resolves, so a change
   * of theirs after it is announced. Counted whatever the outcome: the socket's `unwatch` (or its
   * disconnect) takes them back.
   */
  async watch(userIds: readonly string[]): Promise<void> {
    const first: string[] = [];
    for (const id of userIds) {
      const n = this.watchers.get(id) ?? 0;
      this.watchers.set(id, n + 1);
      if (n === 0) first.push(id);
    }
    // false: the instance was reaped while alive; its restore watches every user again
    if (first.length) await this.timed('watch', () => this.registry.watch(this.instance, first));
  }

  /**
   * Counts one socket fewer watching each of `userIds`; users no socket of the pod watches any
   * longer leave the watched index. Never rejects: an unwatch that fails leaves the pod counted
   * as a watcher (a few broadcasts nobody receives) until it unwatches again or leaves.
   */
  unwatch(userIds: Iterable<string>): void {
    const last: string[] = [];
    for (const id of userIds) {
      const n = this.watchers.get(id);
      if (n === undefined) continue;
      if (n > 1) this.watchers.set(id, n - 1);
      else {
        this.watchers.delete(id);
        last.push(id);
      }
    }
    if (last.length === 0) return;
    this.timed('unwatch', () => this.registry.unwatch(this.instance, last)).catch((err: unknown) =>
      this.deps.logger.warn({ err, users: last.length }, 'leaving the watched index failed'),
    );
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
        // the watches the reaper took back (or Redis lost) too; the users watched now, read after
        // the sockets are back, so a watch that found the instance unregistered is among them
        await this.timed('watch', () => this.registry.watch(this.instance, [...this.watchers.keys()]));
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
