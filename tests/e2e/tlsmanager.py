"""A real wr-manager on mutual TLS with a given cluster CA, for the e2e tests that run a
manager by hand, and how a cluster dir or an operator gets that CA's credentials."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.infra.pki import ClusterPki
from tests.integration.manager.test_process import ManagerProcess
from wrctl.certs import operator_for, write_credentials
from wrctl.pki import ClusterCA, pki_dir


def tls_manager(tmp: Path, ca: ClusterCA, cluster: str = "") -> ManagerProcess:
    """A ManagerProcess (sqlite) serving with `ca`'s manager certificate; `cluster` names the
    cluster it serves ("" = none: it then accepts the CA's identities of any cluster name)."""
    tmp.mkdir(parents=True, exist_ok=True)
    process = ManagerProcess(tmp / "manager", ClusterPki(ca, _scratch(tmp)), "sqlite")
    tls = tmp / "tls"
    write_credentials(ca.manager_credentials([]), tls)
    named = f'cluster = "{cluster}"\n' if cluster else ""
    process.config.write_text(  # the whole file: ours, whatever ManagerProcess writes
        f'{named}listen_address = "127.0.0.1:{process.grpc_port}"\n'
        f'admin_address = "127.0.0.1:{process.admin_port}"\n'
        'data_dir = "data"\nstate = "sqlite"\n'
        f'[tls]\ncert_path = "{tls}/manager.crt"\nkey_path = "{tls}/manager.key"\n'
        f'ca_cert_path = "{tls}/ca.crt"\n'
    )
    return process


def _scratch(tmp: Path) -> Path:
    scratch = tmp / "pki-scratch"
    scratch.mkdir(exist_ok=True, mode=0o700)
    return scratch


def adopt_ca(ca: ClusterCA, cluster_file: Path, cluster: str) -> None:
    """Make `ca` the CA wrctl keeps for cluster_file, as if that cluster had been applied
    from here: wrctl then issues its own operator certificate from it."""
    directory = pki_dir(cluster_file, cluster)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(ca.directory / name, directory / name)


def operator_dir(ca: ClusterCA, directory: Path, name: str = "e2e") -> Path:
    """A WR_CREDENTIALS dir holding an operator certificate of `ca`."""
    write_credentials(operator_for(ca, name), directory)
    return directory
