"""The one naming rule of OpenShift AI data connections: Secret ``aws-connection-NAME``, also KServe's key.

Dependency-free, so deploy.sh's renderers (run with a bare python3) use the same function as the steps.
"""

from __future__ import annotations

import re

from modelpipe.errors import ConfigError

# OpenShift AI names a data connection's Secret with this prefix; KServe's storage key is that name.
DATA_CONNECTION_PREFIX = "aws-connection-"
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def storage_key_for(data_connection: str) -> str:
    """The Secret (and KServe storage key) of an OpenShift AI data connection: ``aws-connection-NAME``.

    Raises:
        ConfigError: The resulting name is not a valid Secret name.
    """
    key = f"{DATA_CONNECTION_PREFIX}{data_connection}"
    if len(key) > 253 or not _SECRET_NAME.match(key):
        raise ConfigError(
            f"--data-connection {data_connection!r} does not make a valid Secret name ({key!r})",
            fix="use lowercase letters, digits and '-', e.g. --data-connection models",
        )
    return key
