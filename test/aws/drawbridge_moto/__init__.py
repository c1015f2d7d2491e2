"""moto server plus the AWS APIs Drawbridge calls that moto lacks (see each module's header)."""

import json
import re

import moto.backend_index as backend_index
import moto.backends as backends

from . import elasticache, hooks, rds, redshift, redshift_serverless, secretsmanager, sts
from .verify import verify_presigned


def install() -> None:
    elasticache.install()
    rds.install()
    redshift.install()
    sts.install()
    secretsmanager.install()

    backend_index.backend_url_patterns.append(
        (redshift_serverless.SERVICE, re.compile(r"https?://redshift-serverless\.(.+)\.amazonaws\.com"))
    )
    original_get_backend = backends.get_backend

    def get_backend(name):
        if name == redshift_serverless.SERVICE:
            return redshift_serverless.redshiftserverless_backends
        return original_get_backend(name)

    backends.get_backend = get_backend


def control_app(app):
    """WSGI middleware: /_drawbridge/* are the harness's control calls, the rest is moto."""

    def respond(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("content-type", "application/json"), ("content-length", str(len(data)))])
        return [data]

    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_drawbridge/"):
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if path == "/_drawbridge/hook":
            hooks.set_url(body.get("url"))
            return respond(start_response, "200 OK", {"ok": True})
        if path == "/_drawbridge/elasticache-front":
            from .elasticache_front import Front

            front = Front(
                body["redisPort"], body["adminUser"], body["adminPassword"], body["resource"], body.get("serverless", False)
            )
            return respond(start_response, "200 OK", {"port": front.port})
        if path == "/_drawbridge/verify":
            result = verify_presigned(body["token"], body["service"], body.get("expect"))
            return respond(start_response, "200 OK", result)
        return respond(start_response, "404 Not Found", {"error": f"no control call {path}"})

    return wrapped
