"""A minimal LDAP simple-bind server that accepts RDS IAM auth tokens as passwords.

RDS checks an IAM token inside the database (through PAM) by asking AWS whether it is genuine.
A local PostgreSQL can do the same without PAM: pg_hba's `ldap` method sends the password the
client gave to an LDAP server as a simple bind. This server answers binds for DN
`cn=<user>,dc=rds` by verifying the password as an `rds-db` presigned token for DBUser=<user>
(verify.py), so the database accepts exactly the token the agent signed and nothing else.
Only BindRequest and UnbindRequest are understood (all PostgreSQL sends).
"""

import socketserver
import threading

from .verify import verify_presigned

SUCCESS, INVALID_CREDENTIALS = 0, 49


def _read_tlv(buf: bytes, i: int) -> tuple[int, bytes, int]:
    tag = buf[i]
    length = buf[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[i : i + n], "big")
        i += n
    return tag, buf[i : i + length], i + length


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def _bind_response(message_id: bytes, code: int, text: str) -> bytes:
    body = _tlv(0x0A, bytes([code])) + _tlv(0x04, b"") + _tlv(0x04, text.encode())
    return _tlv(0x30, _tlv(0x02, message_id) + _tlv(0x61, body))


def _user_of(dn: str) -> str | None:
    first = dn.split(",", 1)[0]
    return first[3:] if first.lower().startswith("cn=") else None


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        buf = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2:
                try:
                    tag, message, end = _read_tlv(buf, 0)
                except IndexError:
                    break
                if end > len(buf):
                    break
                buf = buf[end:]
                if tag != 0x30 or not self._message(message):
                    return

    def _message(self, message: bytes) -> bool:
        _, message_id, i = _read_tlv(message, 0)
        op, body, _ = _read_tlv(message, i)
        if op == 0x42:  # UnbindRequest
            return False
        if op != 0x60:  # only BindRequest
            return False
        _, _version, j = _read_tlv(body, 0)
        _, dn, j = _read_tlv(body, j)
        auth_tag, password, _ = _read_tlv(body, j)
        user = _user_of(dn.decode())
        if auth_tag != 0x80 or not user:
            code, text = INVALID_CREDENTIALS, "simple bind as cn=<user>,... only"
        else:
            result = verify_presigned(password.decode(), "rds-db", {"DBUser": user})
            code, text = (SUCCESS, "") if result["valid"] else (INVALID_CREDENTIALS, result["reason"])
        self.request.sendall(_bind_response(message_id, code, text))
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(host: str, port: int) -> None:
    server = _Server((host, port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
