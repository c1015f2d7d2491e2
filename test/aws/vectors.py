"""Reference auth tokens from botocore for the cross-implementation tests (test/integration/aws).

stdin: a JSON list of cases {kind: "rds"|"elasticache", time: ISO-8601 UTC, accessKeyId,
secretAccessKey, sessionToken?, region, host, port?, user, serverless?}; stdout: a JSON list of tokens.
The signing clock is pinned to each case's `time`.
"""

import json
import sys
from datetime import datetime
from unittest import mock

import boto3
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def rds_token(case: dict) -> str:
    client = boto3.client(
        "rds",
        region_name=case["region"],
        aws_access_key_id=case["accessKeyId"],
        aws_secret_access_key=case["secretAccessKey"],
        aws_session_token=case.get("sessionToken"),
    )
    return client.generate_db_auth_token(case["host"], case["port"], case["user"], case["region"])


def elasticache_token(case: dict) -> str:
    # AWS's documented recipe: presign GET http://<name>/?Action=connect&User=<user>, 900 s, strip the scheme.
    query = {"Action": "connect", "User": case["user"]}
    if case.get("serverless"):
        query["ResourceType"] = "ServerlessCache"
    request = AWSRequest(method="GET", url=f"http://{case['host']}/", params=query)
    creds = Credentials(case["accessKeyId"], case["secretAccessKey"], case.get("sessionToken"))
    SigV4QueryAuth(creds, "elasticache", case["region"], expires=900).add_auth(request)
    return request.prepare().url[len("http://") :]


def main() -> None:
    out = []
    for case in json.load(sys.stdin):
        when = datetime.strptime(case["time"], "%Y-%m-%dT%H:%M:%SZ")
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            out.append(rds_token(case) if case["kind"] == "rds" else elasticache_token(case))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
