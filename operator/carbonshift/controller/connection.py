"""One API server's address and credentials (``Connection``) and the TLS context built from them.

Kept apart from the kubeconfig reader (kubeconfig.py) because the in-cluster ServiceAccount, a
member's kubeconfig Secret and the exec plugin's client certificate all end in the same
``Connection``. Error messages never contain credential values: they end up in logs and in
MemberCluster conditions.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carbonshift.controller.execplugin import ExecConfig

__all__ = ["Connection", "KubeconfigError", "NotInCluster"]


class KubeconfigError(ValueError):
    """A kubeconfig cannot be used. The message never contains credential values."""


class NotInCluster(KubeconfigError):
    """No in-cluster ServiceAccount configuration (not running in a pod, or no token mounted)."""


@dataclass(frozen=True)
class Connection:
    """Everything needed to reach one API server. Secrets are left out of ``repr``."""

    server: str  # scheme://host:port[/prefix], no trailing slash
    ca_data: str | None = field(default=None, repr=False)  # PEM; None = the system's trust store
    insecure: bool = False
    token: str | None = field(default=None, repr=False)
    # Re-read periodically by the client: ServiceAccount tokens are rotated on disk.
    token_file: Path | None = None
    client_cert_data: str | None = field(default=None, repr=False)  # PEM
    client_key_data: str | None = field(default=None, repr=False)  # PEM
    namespace: str | None = None  # the context's default namespace, if any
    # The name the server's certificate is checked against, when it is not the server URL's host.
    tls_server_name: str | None = None
    exec_config: ExecConfig | None = None  # the token comes from this plugin

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for this server: its CA (or none with ``insecure``), the name its
        certificate must carry, and the client certificate."""
        context: ssl.SSLContext
        try:
            if self.tls_server_name:
                # PROTOCOL_TLS_CLIENT: verification and host name checks on, as create_default_context.
                context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
                context.server_name = self.tls_server_name
                if self.ca_data:
                    context.load_verify_locations(cadata=self.ca_data)
                else:
                    context.load_default_certs()
            else:
                context = ssl.create_default_context(cadata=self.ca_data) if self.ca_data else ssl.create_default_context()
        except (ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(f"the certificate authority is not a valid PEM certificate ({type(exc).__name__})") from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_data and self.client_key_data:
            _load_client_certificate(context, self.client_cert_data, self.client_key_data)
        return context


class _ServerNameContext(ssl.SSLContext):
    """Checks (and sends as SNI) ``server_name`` instead of the host being connected to, as
    client-go's ``tls-server-name`` does. Being the context itself, it works for every client
    that is handed it: aiohttp (wrap_bio), urllib (wrap_socket), and Kopf's session."""

    server_name: str

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False,
                 server_hostname: Any = None, session: Any = None) -> Any:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)


def _load_client_certificate(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # ssl can load a certificate chain only from files: write both into a private (0700) temporary
    # directory as 0600 files, and remove them right after loading.
    with tempfile.TemporaryDirectory(prefix="carbonshift-tls-") as folder:
        paths = []
        for filename, pem in (("client.crt", cert_pem), ("client.key", key_pem)):
            path = os.path.join(folder, filename)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(pem)
            paths.append(path)
        try:
            context.load_cert_chain(certfile=paths[0], keyfile=paths[1])
        except (ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(
                f"the client certificate or key is not valid PEM, or they do not match ({type(exc).__name__})") from None
