"""ElastiCache's IAM login, in front of a local Redis.

ElastiCache accepts `AUTH <user> <IAM token>` after checking the token with AWS. A local Redis
cannot, so this TCP front stands where the cache endpoint would: it reads the client's first
command, and for AUTH verifies the token (verify.py: service elasticache, Action=connect,
User=<user>, the cache name as host, ResourceType=ServerlessCache for serverless caches). A valid
token is added to the Redis user's passwords just for the AUTH and removed right after, so Redis
accepts exactly that token; an invalid one gets Redis's own WRONGPASS. Then bytes flow unchanged.
"""

import socket
import threading

from .verify import verify_presigned

WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def _read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    data = bytes(buf[:n])
    buf[:] = buf[n:]
    return data


def _read_command(sock: socket.socket, buf: bytearray) -> tuple[list[bytes], bytes]:
    """One RESP array of bulk strings: (arguments, raw bytes)."""
    head = _read_line(sock, buf)
    raw = head + b"\r\n"
    if not head.startswith(b"*"):
        return [head], raw
    args = []
    for _ in range(int(head[1:])):
        size = _read_line(sock, buf)
        data = _read_exact(sock, buf, int(size[1:]) + 2)
        raw += size + b"\r\n" + data
        args.append(data[:-2])
    return args, raw


def _encode(*args: str) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode()
        out += f"${len(b)}\r\n".encode() + b + b"\r\n"
    return out


class Front:
    def __init__(self, redis_port: int, admin_user: str, admin_password: str, resource: str, serverless: bool):
        self.redis = ("127.0.0.1", redis_port)
        self.admin = (admin_user, admin_password)
        self.expect = {"Action": "connect"}
        if serverless:
            self.expect["ResourceType"] = "ServerlessCache"
        self.resource = resource.lower()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _admin(self, *command: str) -> None:
        with socket.create_connection(self.redis) as s:
            s.sendall(_encode("AUTH", *self.admin) + _encode(*command))
            buf = bytearray()
            for _ in range(2):
                line = _read_line(s, buf)
                if line.startswith(b"-"):
                    raise RuntimeError(line.decode())

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.redis)
        buf = bytearray()
        try:
            args, raw = _read_command(client, buf)
            if len(args) == 3 and args[0].upper() == b"AUTH":
                user, token = args[1].decode(), args[2].decode()
                result = verify_presigned(token, "elasticache", {**self.expect, "User": user})
                host = token.split("/", 1)[0]
                if not result["valid"] or host != self.resource:
                    client.sendall(WRONGPASS)
                else:
                    with self.lock:
                        self._admin("ACL", "SETUSER", user, f">{token}")
                        upstream.sendall(raw)
                        reply = bytearray()
                        client.sendall(_read_line(upstream, reply) + b"\r\n" + bytes(reply))
                        self._admin("ACL", "SETUSER", user, f"<{token}")
            else:
                upstream.sendall(raw)
            if buf:
                upstream.sendall(bytes(buf))
        except Exception:
            client.close()
            upstream.close()
            return
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
