import { presenceRoom } from '@switchboard/protocol';
import type { DisconnectResult } from '@switchboard/store';
import type { GatewayServer } from './context.js';

/**
 * What a socket leaving says to the cluster: `room:member_left` where it was the user's last
 * socket, and offline presence when it was the user's last socket anywhere. Used for clean
 * disconnects and for sockets of reaped pods alike, so both look the same to clients.
 */
export function announceDeparture(io: GatewayServer, left: DisconnectResult, now = Date.now()): void {
  for (const room of left.roomsLeft) io.to(room).emit('room:member_left', { room, userId: left.userId });
  if (left.wentOffline) {
    io.to(presenceRoom(left.userId)).emit('presence:changed', {
      userId: left.userId,
      online: false,
      status: left.status,
      lastSeen: now,
    });
  }
}
