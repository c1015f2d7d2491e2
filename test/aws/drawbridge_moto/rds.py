"""RDS: CreateDBClusterEndpoint (Aurora custom endpoints), absent from moto.

The endpoint's address joins the cluster's `CustomEndpoints` in DescribeDBClusters, which is where
discovery reads custom endpoints from; the response is the DBClusterEndpoint shape of the RDS API.
"""

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.rds.responses import RDSResponse


class DBClusterNotFoundFault(ServiceException):
    code = "DBClusterNotFoundFault"


class DBClusterEndpointAlreadyExistsFault(ServiceException):
    code = "DBClusterEndpointAlreadyExistsFault"


def create_db_cluster_endpoint(self: RDSResponse) -> ActionResult:
    backend = self.backend
    cluster_id = self._get_param("DBClusterIdentifier")
    endpoint_id = self._get_param("DBClusterEndpointIdentifier")
    cluster = backend.clusters.get(cluster_id)
    if cluster is None:
        raise DBClusterNotFoundFault(f"DBCluster {cluster_id} not found.")
    custom = getattr(cluster, "custom_endpoints", [])
    address = f"{endpoint_id}.cluster-custom-{cluster.url_identifier}.{cluster.region}.rds.amazonaws.com"
    if address in custom:
        raise DBClusterEndpointAlreadyExistsFault(f"Endpoint {endpoint_id} already exists.")
    cluster.custom_endpoints = [*custom, address]
    return ActionResult(
        {
            "DBClusterEndpointIdentifier": endpoint_id,
            "DBClusterIdentifier": cluster_id,
            "DBClusterEndpointResourceIdentifier": f"cluster-endpoint-{endpoint_id}",
            "Endpoint": address,
            "Status": "available",
            "EndpointType": "CUSTOM",
            "CustomEndpointType": self._get_param("EndpointType") or "ANY",
            "DBClusterEndpointArn": f"arn:aws:rds:{cluster.region}:{backend.account_id}:cluster-endpoint:{endpoint_id}",
        }
    )


def install() -> None:
    RDSResponse.create_db_cluster_endpoint = create_db_cluster_endpoint
