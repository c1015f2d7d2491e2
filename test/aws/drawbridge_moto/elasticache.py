"""ElastiCache APIs moto lacks: ModifyUser, user groups, serverless caches.

Request and response shapes follow the ElastiCache API reference (moto serialises the dicts below
through botocore's model, so field names are checked against AWS's own schema). ModifyUser also
fires the issuance hook, the way ElastiCache pushes a user's passwords to its nodes.
"""

import random
import re
import string

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, PaginatedResult
from moto.core.utils import utcnow
from moto.elasticache.exceptions import UserNotFound
from moto.elasticache.models import ElastiCacheBackend, ReplicationGroup
from moto.elasticache.responses import ElastiCacheResponse

from . import hooks


class InvalidParameterValue(ServiceException):
    code = "InvalidParameterValue"


class UserGroupNotFound(ServiceException):
    code = "UserGroupNotFound"


class UserGroupAlreadyExists(ServiceException):
    code = "UserGroupAlreadyExists"


class DefaultUserRequired(ServiceException):
    code = "DefaultUserRequired"


class ServerlessCacheNotFound(ServiceException):
    code = "ServerlessCacheNotFound"


class ServerlessCacheAlreadyExists(ServiceException):
    code = "ServerlessCacheAlreadyExists"


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=6))


def _state(backend: ElastiCacheBackend) -> dict:
    """Per-region state stored on moto's backend object, so moto's reset clears it too."""
    if not hasattr(backend, "_drawbridge"):
        backend._drawbridge = {"user_groups": {}, "serverless": {}}
    return backend._drawbridge


def _arn(backend: ElastiCacheBackend, kind: str, name: str) -> str:
    return f"arn:aws:elasticache:{backend.region_name}:{backend.account_id}:{kind}:{name}"


def _user_group_view(group: dict) -> dict:
    return {k: v for k, v in group.items() if not k.startswith("_")}


class _Ops:
    """The added actions, mixed into moto's ElastiCacheResponse."""

    def modify_user(self: ElastiCacheResponse) -> ActionResult:
        backend = self.elasticache_backend
        user_id = self._get_param("UserId")
        user = backend.users.get(user_id)
        if user is None:
            raise UserNotFound(user_id)
        passwords = self._get_param("Passwords") or []
        mode = self._get_param("AuthenticationMode") or {}
        if mode.get("Passwords"):
            passwords = mode["Passwords"]
        if any(len(p) < 16 or len(p) > 128 for p in passwords):
            raise InvalidParameterValue("Passwords length must be between 16-128 characters.")
        if len(passwords) > 2:
            raise InvalidParameterValue("A user can have at most 2 passwords.")
        access = self._get_param("AccessString")
        if access:
            user.access_string = access
        append = self._get_param("AppendAccessString")
        if append:
            user.access_string = f"{user.access_string} {append}"
        if mode.get("Type"):
            user.authentication_type = mode["Type"]
            user.no_password_required = mode["Type"] == "no-password-required"
        if passwords:
            user.passwords = list(passwords)
            user.authentication_type = "password"
            user.no_password_required = False
            hooks.fire(
                {
                    "event": "elasticache.user.passwords",
                    "region": backend.region_name,
                    "account": backend.account_id,
                    "userId": user.id,
                    "userName": user.name,
                    "passwords": list(passwords),
                }
            )
        return ActionResult(user)

    def create_user_group(self: ElastiCacheResponse) -> ActionResult:
        backend = self.elasticache_backend
        groups = _state(backend)["user_groups"]
        group_id = self._get_param("UserGroupId")
        if group_id in groups:
            raise UserGroupAlreadyExists(f"User group {group_id} already exists.")
        user_ids = self._get_param("UserIds") or []
        for uid in user_ids:
            if uid not in backend.users:
                raise UserNotFound(uid)
        if not any(backend.users[u].name == "default" for u in user_ids):
            raise DefaultUserRequired("User group needs to contain a user with the user name default.")
        group = {
            "UserGroupId": group_id,
            "Status": "active",
            "Engine": self._get_param("Engine") or "redis",
            "UserIds": list(user_ids),
            "MinimumEngineVersion": "6.0",
            "ReplicationGroups": [],
            "ServerlessCaches": [],
            "ARN": _arn(backend, "usergroup", group_id),
        }
        groups[group_id] = group
        for uid in user_ids:
            backend.users[uid].user_group_ids.append(group_id)
        if self._get_param("Tags"):
            backend.tagging_service.tag_resource(group["ARN"], self._get_param("Tags"))
        return ActionResult(_user_group_view(group))

    def describe_user_groups(self: ElastiCacheResponse) -> ActionResult:
        groups = _state(self.elasticache_backend)["user_groups"]
        group_id = self._get_param("UserGroupId")
        if group_id:
            if group_id not in groups:
                raise UserGroupNotFound(f"User group {group_id} not found.")
            selected = [groups[group_id]]
        else:
            selected = list(groups.values())
        return ActionResult({"UserGroups": [_user_group_view(g) for g in selected]})

    def modify_user_group(self: ElastiCacheResponse) -> ActionResult:
        backend = self.elasticache_backend
        groups = _state(backend)["user_groups"]
        group_id = self._get_param("UserGroupId")
        if group_id not in groups:
            raise UserGroupNotFound(f"User group {group_id} not found.")
        group = groups[group_id]
        for uid in self._get_param("UserIdsToAdd") or []:
            if uid not in backend.users:
                raise UserNotFound(uid)
            if uid not in group["UserIds"]:
                group["UserIds"].append(uid)
                backend.users[uid].user_group_ids.append(group_id)
        for uid in self._get_param("UserIdsToRemove") or []:
            if uid in group["UserIds"]:
                group["UserIds"].remove(uid)
                backend.users[uid].user_group_ids.remove(group_id)
        return ActionResult(_user_group_view(group))

    def create_serverless_cache(self: ElastiCacheResponse) -> ActionResult:
        backend = self.elasticache_backend
        caches = _state(backend)["serverless"]
        name = self._get_param("ServerlessCacheName")
        if name in caches:
            raise ServerlessCacheAlreadyExists(f"Serverless cache {name} already exists.")
        engine = self._get_param("Engine") or "redis"
        major = self._get_param("MajorEngineVersion") or "7"
        group_id = self._get_param("UserGroupId")
        if group_id and group_id not in _state(backend)["user_groups"]:
            raise UserGroupNotFound(f"User group {group_id} not found.")
        host = f"{name}-{_suffix()}.serverless.{backend.region_name}.cache.amazonaws.com"
        cache = {
            "ServerlessCacheName": name,
            "Description": self._get_param("Description") or "",
            "CreateTime": utcnow(),
            "Status": "available",
            "Engine": engine,
            "MajorEngineVersion": major,
            "FullEngineVersion": f"{major}.1",
            "SecurityGroupIds": self._get_param("SecurityGroupIds") or [],
            "SubnetIds": self._get_param("SubnetIds") or [],
            "Endpoint": {"Address": host, "Port": 6379},
            "ReaderEndpoint": {"Address": host, "Port": 6380},
            "ARN": _arn(backend, "serverlesscache", name),
            "SnapshotRetentionLimit": self._get_param("SnapshotRetentionLimit") or 0,
        }
        if group_id:
            cache["UserGroupId"] = group_id
            _state(backend)["user_groups"][group_id]["ServerlessCaches"].append(name)
        caches[name] = cache
        if self._get_param("Tags"):
            backend.tagging_service.tag_resource(cache["ARN"], self._get_param("Tags"))
        return ActionResult({"ServerlessCache": cache})

    def describe_serverless_caches(self: ElastiCacheResponse) -> ActionResult:
        caches = _state(self.elasticache_backend)["serverless"]
        name = self._get_param("ServerlessCacheName")
        if name:
            if name not in caches:
                raise ServerlessCacheNotFound(f"Serverless cache {name} not found.")
            return ActionResult({"ServerlessCaches": [caches[name]]})
        return PaginatedResult({"ServerlessCaches": list(caches.values())})

    def modify_serverless_cache(self: ElastiCacheResponse) -> ActionResult:
        backend = self.elasticache_backend
        caches = _state(backend)["serverless"]
        name = self._get_param("ServerlessCacheName")
        if name not in caches:
            raise ServerlessCacheNotFound(f"Serverless cache {name} not found.")
        cache = caches[name]
        group_id = self._get_param("UserGroupId")
        if group_id:
            if group_id not in _state(backend)["user_groups"]:
                raise UserGroupNotFound(f"User group {group_id} not found.")
            cache["UserGroupId"] = group_id
        if self._get_bool_param("RemoveUserGroup"):
            cache.pop("UserGroupId", None)
        if self._get_param("Description") is not None:
            cache["Description"] = self._get_param("Description")
        return ActionResult({"ServerlessCache": cache})

    def delete_serverless_cache(self: ElastiCacheResponse) -> ActionResult:
        caches = _state(self.elasticache_backend)["serverless"]
        name = self._get_param("ServerlessCacheName")
        if name not in caches:
            raise ServerlessCacheNotFound(f"Serverless cache {name} not found.")
        cache = caches.pop(name)
        cache["Status"] = "deleting"
        return ActionResult({"ServerlessCache": cache})


def install() -> None:
    for name, fn in vars(_Ops).items():
        if callable(fn) and not name.startswith("_"):
            setattr(ElastiCacheResponse, name, fn)

    # Tags on the new resource kinds: widen moto's ARN check for ListTagsForResource.
    original_init = ElastiCacheBackend.__init__

    def __init__(self, region_name: str, account_id: str) -> None:
        original_init(self, region_name, account_id)
        self.arn_regex = re.compile(
            r"^arn:aws:elasticache:.*:[0-9]*:(cluster|snapshot|subnetgroup|replicationgroup|user|usergroup|serverlesscache):.*$"
        )

    ElastiCacheBackend.__init__ = __init__

    # moto computes the reader endpoint of a cluster-mode-disabled group but does not return it; AWS
    # does (NodeGroups[].ReaderEndpoint), and discovery turns it into the `-reader` Database.
    original_group_init = ReplicationGroup.__init__

    def group_init(self, *args, **kwargs) -> None:
        original_group_init(self, *args, **kwargs)
        for group in self.node_groups:
            if "reader_endpoint_address" in group and "reader_endpoint" not in group:
                group["reader_endpoint"] = {"address": group["reader_endpoint_address"], "port": group["port"]}

    ReplicationGroup.__init__ = group_init
