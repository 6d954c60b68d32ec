import { presenceRoom, userRoom, type PresenceStatus } from '@switchboard/protocol';
import type { DisconnectResult, RestoreResult } from '@switchboard/store';
import type { GatewayServer } from './context.js';

/** A user's first socket anywhere: online presence to the user's watchers. */
export function announceArrival(io: GatewayServer, userId: string, status: PresenceStatus): void {
  io.to(presenceRoom(userId)).emit('presence:changed', { userId, online: true, status });
}

/**
 * What a socket leaving says to the cluster: `room:member_left` where it was the user's last
 * socket, and offline presence when it was the user's last socket anywhere and someone watches
 * the user (the registry's watched index). Used for clean disconnects and for sockets of reaped
 * instances alike, so both look the same to clients.
 */
export function announceDeparture(io: GatewayServer, left: DisconnectResult): void {
  for (const room of left.roomsLeft) io.to(room).emit('room:member_left', { room, userId: left.userId });
  if (left.wentOffline && left.watched) {
    io.to(presenceRoom(left.userId)).emit('presence:changed', {
      userId: left.userId,
      online: false,
      status: left.status,
      lastSeen: left.at,
    });
  }
}

/**
 * After this pod's sockets were put back in the registry: what watchers and members were told
 * when the pod was taken for dead is undone (users online again, members joined again), and
 * what the registry held wrongly is announced as gone.
 */
export function announceRestore(io: GatewayServer, result: RestoreResult): void {
  for (const { userId, status } of result.cameOnline) announceArrival(io, userId, status);
  for (const { room, userId, name } of result.joined) {
    io.to(room).except(userRoom(userId)).emit('room:member_joined', { room, userId, ...(name ? { name } : {}) });
  }
  for (const { room, userId } of result.left) io.to(room).emit('room:member_left', { room, userId });
  for (const left of result.dropped) announceDeparture(io, left);
}
