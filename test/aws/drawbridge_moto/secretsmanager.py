"""Secrets Manager: PutSecretValue is atomic in AWS (a second write of one ClientRequestToken with other
content fails with ResourceExistsException). moto checks and then writes without a lock, so two threaded
requests can both pass the check; serialise them so replicas racing for one rotation see AWS's behaviour."""

import threading

from moto.secretsmanager.models import SecretsManagerBackend

_lock = threading.Lock()


def install() -> None:
    original = SecretsManagerBackend.put_secret_value

    def put_secret_value(self, *args, **kwargs):
        with _lock:
            return original(self, *args, **kwargs)

    SecretsManagerBackend.put_secret_value = put_secret_value
