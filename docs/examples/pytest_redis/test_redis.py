"""Tests that talk to the session's Redis server."""

import socket


def test_ping(redis):
    with socket.create_connection(("127.0.0.1", redis.port)) as client:
        client.sendall(b"PING\r\n")
        assert client.recv(64) == b"+PONG\r\n"
