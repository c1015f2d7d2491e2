"""Redshift Serverless (absent from moto): namespaces, workgroups, tags and GetCredentials.

JSON protocol (X-Amz-Target RedshiftServerless.*), shapes from the Redshift Serverless API
reference; moto serialises them through botocore's model. GetCredentials derives the database
user from the caller's IAM identity like Redshift's GetClusterCredentialsWithIAM.
"""

import sys
import uuid
from datetime import datetime, timedelta, timezone

from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import utcnow
from moto.moto_api._internal import mock_random

from . import hooks
from .identity import principal, redshift_db_user

SERVICE = "redshift-serverless"


class ResourceNotFoundException(ServiceException):
    code = "ResourceNotFoundException"


class ConflictException(ServiceException):
    code = "ConflictException"


class ValidationException(ServiceException):
    code = "ValidationException"


class RedshiftServerlessBackend(BaseBackend):
    def __init__(self, region_name: str, account_id: str):
        super().__init__(region_name, account_id)
        self.namespaces: dict[str, dict] = {}
        self.workgroups: dict[str, dict] = {}
        self.tags: dict[str, list[dict]] = {}

    @property
    def _url_module(self):  # moto looks up url_bases/url_paths next to the backend
        return sys.modules[__name__]

    def arn(self, kind: str, resource_id: str) -> str:
        return f"arn:aws:redshift-serverless:{self.region_name}:{self.account_id}:{kind}/{resource_id}"


redshiftserverless_backends = BackendDict(RedshiftServerlessBackend, SERVICE)


class RedshiftServerlessResponse(BaseResponse):
    def __init__(self) -> None:
        super().__init__(service_name=SERVICE)
        self.automated_parameter_parsing = True

    @property
    def backend(self) -> RedshiftServerlessBackend:
        return redshiftserverless_backends[self.current_account][self.region]

    def create_namespace(self) -> ActionResult:
        name = self._get_param("namespaceName")
        if name in self.backend.namespaces:
            raise ConflictException(f"Namespace {name} already exists")
        ns_id = str(uuid.uuid4())
        namespace = {
            "namespaceArn": self.backend.arn("namespace", ns_id),
            "namespaceId": ns_id,
            "namespaceName": name,
            "adminUsername": self._get_param("adminUsername") or "admin",
            "dbName": self._get_param("dbName") or "dev",
            "iamRoles": self._get_param("iamRoles") or [],
            "logExports": [],
            "status": "AVAILABLE",
            "creationDate": utcnow(),
        }
        self.backend.namespaces[name] = namespace
        self._tag(namespace["namespaceArn"], self._get_param("tags"))
        return ActionResult({"namespace": namespace})

    def list_namespaces(self) -> ActionResult:
        return ActionResult({"namespaces": list(self.backend.namespaces.values())})

    def create_workgroup(self) -> ActionResult:
        name = self._get_param("workgroupName")
        namespace = self._get_param("namespaceName")
        if name in self.backend.workgroups:
            raise ConflictException(f"Workgroup {name} already exists")
        if namespace not in self.backend.namespaces:
            raise ResourceNotFoundException(f"Namespace {namespace} not found")
        wg_id = str(uuid.uuid4())
        port = self._get_param("port") or 5439
        address = f"{name}.{self.backend.account_id}.{self.backend.region_name}.redshift-serverless.amazonaws.com"
        subnets = self._get_param("subnetIds") or []
        workgroup = {
            "workgroupArn": self.backend.arn("workgroup", wg_id),
            "workgroupId": wg_id,
            "workgroupName": name,
            "namespaceName": namespace,
            "baseCapacity": self._get_param("baseCapacity") or 128,
            "enhancedVpcRouting": bool(self._get_param("enhancedVpcRouting")),
            "publiclyAccessible": bool(self._get_param("publiclyAccessible")),
            "securityGroupIds": self._get_param("securityGroupIds") or [],
            "subnetIds": subnets,
            "status": "AVAILABLE",
            "port": port,
            "creationDate": utcnow(),
            "endpoint": {
                "address": address,
                "port": port,
                "vpcEndpoints": [
                    {"vpcEndpointId": f"vpce-{wg_id[:17]}", "vpcId": self._vpc_of(subnets), "networkInterfaces": []}
                ],
            },
        }
        self.backend.workgroups[name] = workgroup
        self._tag(workgroup["workgroupArn"], self._get_param("tags"))
        return ActionResult({"workgroup": workgroup})

    def get_workgroup(self) -> ActionResult:
        return ActionResult({"workgroup": self._workgroup(self._get_param("workgroupName"))})

    def list_workgroups(self) -> ActionResult:
        return ActionResult({"workgroups": list(self.backend.workgroups.values())})

    def delete_workgroup(self) -> ActionResult:
        workgroup = self._workgroup(self._get_param("workgroupName"))
        del self.backend.workgroups[workgroup["workgroupName"]]
        workgroup["status"] = "DELETING"
        return ActionResult({"workgroup": workgroup})

    def list_tags_for_resource(self) -> ActionResult:
        arn = self._get_param("resourceArn")
        if arn not in self.backend.tags:
            known = [w["workgroupArn"] for w in self.backend.workgroups.values()]
            known += [n["namespaceArn"] for n in self.backend.namespaces.values()]
            if arn not in known:
                raise ResourceNotFoundException(f"Resource {arn} not found")
        return ActionResult({"tags": self.backend.tags.get(arn, [])})

    def tag_resource(self) -> ActionResult:
        self._tag(self._get_param("resourceArn"), self._get_param("tags"))
        return ActionResult({})

    def get_credentials(self) -> ActionResult:
        name = self._get_param("workgroupName")
        if not name:
            raise ValidationException("workgroupName or customDomainName is required")
        workgroup = self._workgroup(name)
        seconds = self._get_param("durationSeconds") or 900
        if seconds < 900 or seconds > 3600:
            raise ValidationException("durationSeconds must be between 900 and 3600")
        expiration = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        db_user = redshift_db_user(self.get_access_key())
        password = mock_random.get_random_string(32)
        hooks.fire(
            {
                "event": "redshift-serverless.credentials",
                "region": self.backend.region_name,
                "account": self.backend.account_id,
                "resource": workgroup["workgroupName"],
                "dbUser": db_user,
                "dbName": self._get_param("dbName"),
                "password": password,
                "expiration": expiration.isoformat(),
                "caller": principal(self.get_access_key()).get("arn", self.get_access_key()),
            }
        )
        return ActionResult(
            {"dbUser": db_user, "dbPassword": password, "expiration": expiration, "nextRefreshTime": expiration}
        )

    def _workgroup(self, name: str) -> dict:
        if name not in self.backend.workgroups:
            raise ResourceNotFoundException(f"Workgroup {name} not found")
        return self.backend.workgroups[name]

    def _tag(self, arn: str, tags) -> None:
        if not tags:
            return
        current = {t["key"]: t["value"] for t in self.backend.tags.get(arn, [])}
        current.update({t["key"]: t["value"] for t in tags})
        self.backend.tags[arn] = [{"key": k, "value": v} for k, v in current.items()]

    def _vpc_of(self, subnets: list[str]) -> str:
        from moto.ec2.models import ec2_backends

        ec2 = ec2_backends[self.backend.account_id][self.backend.region_name]
        for subnet_id in subnets:
            try:
                return ec2.get_subnet(subnet_id).vpc_id
            except Exception:
                continue
        return ""


url_bases = [r"https?://redshift-serverless\.(.+)\.amazonaws\.com"]
url_paths = {"{0}/$": RedshiftServerlessResponse.dispatch}
