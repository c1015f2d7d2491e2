"""Checks a SigV4 query-presigned auth token the way RDS and ElastiCache do.

RDS IAM tokens (`host:port/?Action=connect&DBUser=...`) and ElastiCache IAM tokens
(`name/?Action=connect&User=...[&ResourceType=ServerlessCache]`) are signed on the client; the
database asks AWS whether they are genuine. This does that check with botocore's canonicalisation
(an implementation independent of ours) and the secret moto holds for the access key.
"""

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .identity import principal


def verify_presigned(token: str, service: str, expect: dict | None = None) -> dict:
    """{'valid': bool, 'reason': str, 'params': {...}, 'principal': arn}."""
    url = urlsplit(token if "://" in token else "http://" + token)
    pairs = parse_qsl(url.query, keep_blank_values=True)
    params = dict(pairs)
    try:
        akid, day, region, svc, _ = params["X-Amz-Credential"].split("/")
        signed_at = datetime.strptime(params["X-Amz-Date"], SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc)
        expires = int(params["X-Amz-Expires"])
        signature = params["X-Amz-Signature"]
    except (KeyError, ValueError):
        return {"valid": False, "reason": "not a SigV4 presigned token"}
    if svc != service:
        return {"valid": False, "reason": f"signed for service {svc}, expected {service}"}
    now = datetime.now(timezone.utc)
    if expires > 900 or now > signed_at + timedelta(seconds=expires) or signed_at > now + timedelta(minutes=5):
        return {"valid": False, "reason": "token expired or not yet valid"}
    for key, value in (expect or {}).items():
        if params.get(key) != value:
            return {"valid": False, "reason": f"{key} is {params.get(key)!r}, expected {value!r}"}
    who = principal(akid)
    if not who:
        return {"valid": False, "reason": f"unknown access key {akid}"}

    creds = Credentials(akid, who["secret"], params.get("X-Amz-Security-Token"))
    auth = SigV4QueryAuth(creds, service, region, expires=expires)
    unsigned = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
    request = AWSRequest(method="GET", url=f"http://{url.netloc}{url.path or '/'}?{urlencode(unsigned)}")
    request.headers["host"] = url.netloc
    request.context["timestamp"] = params["X-Amz-Date"]
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != signature:
        return {"valid": False, "reason": "signature does not match"}
    return {"valid": True, "reason": "ok", "params": params, "principal": who["arn"]}
