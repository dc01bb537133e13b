#!/usr/bin/env python3
"""Records real client traffic: the real-* seeds of Fuzz/corpus were recorded with it (Fuzz/README.md says how).

record-traffic.py LISTEN_PORT TARGET_PORT OUT_PREFIX: accepts connections on 127.0.0.1:LISTEN_PORT, relays each
to 127.0.0.1:TARGET_PORT, and writes what the client sent to OUT_PREFIX-N.client and what the server answered
to OUT_PREFIX-N.server. Plaintext loopback only; stops on SIGTERM.
"""
import socket
import sys
import threading


def pump(source, sink, record):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            record.write(data)
            record.flush()
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    listen_port, target_port, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(16)
    count = 0
    while True:
        client, _ = server.accept()
        count += 1
        upstream = socket.create_connection(("127.0.0.1", target_port))
        to_server = open(f"{prefix}-{count}.client", "wb")
        to_client = open(f"{prefix}-{count}.server", "wb")
        threading.Thread(target=pump, args=(client, upstream, to_server), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, to_client), daemon=True).start()


if __name__ == "__main__":
    main()
