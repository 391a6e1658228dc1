"""Free loopback ports for the processes a stack or a test starts."""

from __future__ import annotations

import socket

from sentinai.common.net import free_port


def test_free_ports_asked_in_a_row_are_distinct_and_can_be_listened_on() -> None:
    # Asked one at a time, the kernel may hand the same port out twice before anything listens on it.
    ports = [free_port() for _ in range(64)]
    assert len(set(ports)) == 64
    listeners = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listeners.append(sock)
            sock.bind(("127.0.0.1", port))
            sock.listen()
    finally:
        for sock in listeners:
            sock.close()
