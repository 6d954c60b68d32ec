"""A Switchboard user on python-socketio, driven by JSON lines (for python-client.test.ts).

Usage: python3 socketio_client.py <gateway url>, with the access token in SB_TOKEN (never
printed). Connects with the sync socketio.Client over the websocket transport only, then:

- prints {"type": "event", "event": name, "data": payload} for every server event,
  {"type": "connect_error", "data": ...} when the handshake is refused (exit 2);
- reads commands from stdin, one JSON object a line:
  {"op": "call", "id": n, "event": name, "data": payload} emits with an ack and prints
  {"type": "ack", "id": n, "ack": answer}; {"op": "quit"} (or the end of stdin) disconnects
  and exits 0.
"""

import json
import os
import sys
import threading

import socketio

lock = threading.Lock()


def say(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def main():
    url = sys.argv[1]
    token = os.environ.get("SB_TOKEN")
    if not token:
        say({"type": "error", "message": "SB_TOKEN is not set"})
        return 1

    sio = socketio.Client(reconnection=False)
    refused = threading.Event()

    @sio.on("*")
    def any_event(event, data=None):
        say({"type": "event", "event": event, "data": data})

    @sio.event
    def connect_error(data):
        refused.set()
        say({"type": "connect_error", "data": data})

    try:
        sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError as err:
        if not refused.is_set():
            say({"type": "connect_error", "data": str(err)})
        return 2
    say({"type": "connected", "transport": sio.transport()})

    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        if command["op"] == "call":
            ack = sio.call(command["event"], command.get("data"), timeout=10)
            say({"type": "ack", "id": command["id"], "ack": ack})
    sio.disconnect()
    say({"type": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
