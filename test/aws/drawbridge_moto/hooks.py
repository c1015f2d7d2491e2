"""Issuance hook: tells the test harness about every credential the emulator hands out.

Real Redshift sets the temporary password it returns from GetClusterCredentials inside the
database, and real ElastiCache pushes ModifyUser passwords to its nodes. Here the databases are
local PostgreSQL / Redis servers owned by the test, so the emulator POSTs each issued credential
to the harness (synchronously, before answering the API call) and the harness applies it. The
database then accepts exactly what AWS issued and nothing else.
"""

import json
import sys
import urllib.request

_state: dict[str, str | None] = {"url": None}


def set_url(url: str | None) -> None:
    _state["url"] = url


def fire(event: dict) -> None:
    url = _state["url"]
    if not url:
        return
    body = json.dumps(event, default=str).encode()
    req = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            resp.read()
    except Exception as err:  # the API call still answers; the login will then fail visibly
        print(f"drawbridge_moto: issuance hook {event.get('event')} failed: {err}", file=sys.stderr)
