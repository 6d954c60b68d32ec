import { Emitter } from '@socket.io/redis-emitter';
import type { ServerToClientEvents } from '@switchboard/protocol';
import type { Publication } from '@switchboard/store';

type Target = Emitter<ServerToClientEvents>;

/**
 * What the Socket.IO Redis emitter publishes for a broadcast, captured instead of sent: the
 * emitter does the encoding (the adapter's channel and msgpack format), and the dispatcher sends
 * the PUBLISH itself, inside the inbox write or as a command whose reply confirms it ran.
 */
export class PublicationEncoder {
  private captured: Publication | undefined;
  private readonly emitter: Target;

  /** `key` is the adapter's key, `ioKey(KEY_PREFIX)`, as the gateways use. */
  constructor(key: string) {
    const sink = {
      publish: (channel: string, message: Buffer) => {
        this.captured = { channel, message };
      },
    };
    this.emitter = new Emitter<ServerToClientEvents>(sink, { key });
  }

  /** The publication of what `broadcast` emits, which must be one broadcast. */
  encode(broadcast: (emitter: Target) => void): Publication {
    this.captured = undefined;
    broadcast(this.emitter);
    const publication = this.captured as Publication | undefined;
    this.captured = undefined;
    if (!publication) throw new Error('PublicationEncoder: nothing was emitted');
    return publication;
  }
}
