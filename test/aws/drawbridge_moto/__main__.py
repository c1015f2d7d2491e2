"""`python -m drawbridge_moto --port N`: the emulator for Drawbridge's tests.

Prints `drawbridge-moto listening on PORT` once it accepts connections (test/aws/moto.ts waits
for that line).
"""

import argparse
import signal
import sys

from werkzeug.serving import make_server

from . import control_app, install


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ldap-port", type=int, help="also verify RDS IAM tokens over LDAP (ldap.py)")
    args = parser.parse_args()

    install()
    if args.ldap_port:
        from .ldap import serve

        serve(args.host, args.ldap_port)
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = control_app(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"drawbridge-moto listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
