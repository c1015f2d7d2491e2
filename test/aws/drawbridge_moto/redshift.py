"""Redshift: GetClusterCredentialsWithIAM (missing in moto) and the issuance hook for both credential calls.

GetClusterCredentials returns `IAM:<DbUser>` (moto already does); GetClusterCredentialsWithIAM
derives the database user from the caller's IAM identity — `IAMR:<role>` for an assumed role,
`IAM:<user>` for an IAM user — as the Redshift API reference describes.
"""

from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.moto_api._internal import mock_random
from moto.redshift.exceptions import ClusterNotFoundError, InvalidParameterValueError
from moto.redshift.responses import RedshiftResponse

from . import hooks
from .identity import principal, redshift_db_user


def _issue(
    kind: str, region: str, account: str, resource: str, db_user: str, db_name, seconds: int, caller: str
) -> dict:
    if seconds < 900 or seconds > 3600:
        raise InvalidParameterValueError("Token duration must be between 900 and 3600 seconds")
    expiration = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    password = mock_random.get_random_string(32)
    hooks.fire(
        {
            "event": kind,
            "region": region,
            "account": account,
            "resource": resource,
            "dbUser": db_user,
            "dbName": db_name,
            "password": password,
            "expiration": expiration.isoformat(),
            "caller": principal(caller).get("arn", caller),
        }
    )
    return {"DbUser": db_user, "DbPassword": password, "Expiration": expiration}


def install() -> None:
    # moto's backend method does not see the caller; the response method does.
    def get_cluster_credentials(self: RedshiftResponse) -> ActionResult:
        backend = self.redshift_backend
        cluster_identifier = self._get_param("ClusterIdentifier")
        if cluster_identifier not in backend.clusters:
            raise ClusterNotFoundError(cluster_identifier)
        prefix = "IAMA:" if self._get_bool_param("AutoCreate", False) else "IAM:"
        return ActionResult(
            _issue(
                "redshift.credentials",
                backend.region_name,
                backend.account_id,
                cluster_identifier,
                prefix + self._get_param("DbUser"),
                self._get_param("DbName"),
                self._get_int_param("DurationSeconds", 900),
                self.get_access_key(),
            )
        )

    RedshiftResponse.get_cluster_credentials = get_cluster_credentials

    def get_cluster_credentials_with_iam(self: RedshiftResponse) -> ActionResult:
        backend = self.redshift_backend
        cluster_identifier = self._get_param("ClusterIdentifier")
        if cluster_identifier not in backend.clusters:
            raise ClusterNotFoundError(cluster_identifier)
        issued = _issue(
            "redshift.credentials",
            backend.region_name,
            backend.account_id,
            cluster_identifier,
            redshift_db_user(self.get_access_key()),
            self._get_param("DbName"),
            self._get_int_param("DurationSeconds", 900),
            self.get_access_key(),
        )
        issued["NextRefreshTime"] = issued["Expiration"]
        return ActionResult(issued)

    RedshiftResponse.get_cluster_credentials_with_iam = get_cluster_credentials_with_iam
