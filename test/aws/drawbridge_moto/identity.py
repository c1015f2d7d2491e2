"""Who is calling: maps an access key id to the principal moto knows for it (STS sessions, IAM users)."""

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends


def _assumed_roles():
    for account in list(sts_backends.keys()):
        for backend in sts_backends[account].values():
            yield from backend.assumed_roles


def principal(access_key_id: str) -> dict:
    """{'arn', 'secret', 'kind': 'role'|'user', 'name'} for a key moto issued, else {}."""
    for role in _assumed_roles():
        if role.access_key_id == access_key_id:
            role_name = role.role_arn.split("/")[-1]
            return {
                "arn": role.arn,
                "secret": role.secret_access_key,
                "token": role.session_token,
                "kind": "role",
                "name": role_name,
            }
    for account in list(iam_backends.keys()):
        for backend in iam_backends[account].values():
            for user in backend.users.values():
                for key in user.access_keys:
                    if key.access_key_id == access_key_id:
                        return {
                            "arn": user.arn,
                            "secret": key.secret_access_key,
                            "kind": "user",
                            "name": user.name,
                        }
    return {}


def redshift_db_user(access_key_id: str) -> str:
    """The database user Redshift derives from an IAM identity: IAMR:<role> or IAM:<user>."""
    who = principal(access_key_id)
    if who.get("kind") == "role":
        return f"IAMR:{who['name']}"
    if who.get("kind") == "user":
        return f"IAM:{who['name']}"
    return f"IAM:{access_key_id}"

