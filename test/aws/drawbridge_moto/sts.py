"""STS AssumeRole that honours the role's trust policy, as AWS does.

moto lets anyone assume any role. The troubleshooting path in the seeds starts from
`AccessDenied: User: ... is not authorized to perform: sts:AssumeRole on resource: ...`, so when
the role exists in moto's IAM we evaluate its trust policy (principal, sts:ExternalId condition)
and answer with AWS's error when it does not allow the caller.
"""

import json

from moto.core.exceptions import ServiceException
from moto.iam.models import iam_backends
from moto.sts.responses import TokenResponse

from .identity import principal


class AccessDenied(ServiceException):
    code = "AccessDenied"


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _principal_arns(caller_arn: str) -> set[str]:
    """The ARNs a trust policy may name for this caller: itself, its role, its account root."""
    arns = {caller_arn, "*"}
    parts = caller_arn.split(":")
    if len(parts) >= 6:
        account = parts[4]
        arns.add(f"arn:aws:iam::{account}:root")
        arns.add(account)
        resource = parts[5]
        if resource.startswith("assumed-role/"):
            arns.add(f"arn:aws:iam::{account}:role/{resource.split('/')[1]}")
    return arns


def _allows(document: dict, caller_arn: str, external_id: str | None) -> bool:
    names = _principal_arns(caller_arn)
    for stmt in _as_list(document.get("Statement")):
        if stmt.get("Effect") != "Allow":
            continue
        actions = _as_list(stmt.get("Action"))
        if "sts:AssumeRole" not in actions and "sts:*" not in actions and "*" not in actions:
            continue
        principal_block = stmt.get("Principal", {})
        allowed = (
            {"*"} if principal_block == "*" else set(_as_list(principal_block.get("AWS")))
        )
        if not (allowed & names):
            continue
        wanted = stmt.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        if wanted is not None and external_id not in _as_list(wanted):
            continue
        return True
    return False


def _role(account: str, role_arn: str):
    for backend in iam_backends[account].values():
        try:
            return backend.get_role_by_arn(arn=role_arn)
        except Exception:
            continue
    return None


def install() -> None:
    original = TokenResponse.assume_role

    def assume_role(self):
        role_arn = self._get_param("RoleArn")
        account = role_arn.split(":")[4] if role_arn and role_arn.count(":") >= 5 else ""
        role = _role(account, role_arn) if account.isdigit() else None
        if role is not None:
            who = principal(self.get_access_key())
            caller = who.get("arn") or f"arn:aws:sts::{self.current_account}:user/moto"
            document = role.assume_role_policy_document
            if isinstance(document, str):
                document = json.loads(document)
            if not _allows(document, caller, self._get_param("ExternalId")):
                raise AccessDenied(
                    f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
                )
        return original(self)

    TokenResponse.assume_role = assume_role
