"""``tokenward serve --tls-cert --tls-key``: HTTPS served by Tokenward itself, end to end.

The test makes its own CA and a leaf certificate for 127.0.0.1 (an IP subjectAltName), trusts only that CA, and
runs the authorization-code flow and a refresh over https: the issuer is then https, so the session cookie is
``__Host-`` and ``Secure`` and every response carries HSTS (RFC 6797). TLS below 1.2 is refused (RFC 9325 §3.1.1).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import BACKENDS, dispose, new_server
from tests.support import TOKENWARD, ServerProcess, authorize, exchange_code


def make_ca_and_leaf(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, leaf certificate, leaf key) as PEM files; the leaf is for IP 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tokenward test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


@pytest.fixture(scope="module", params=BACKENDS)
def https_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp(f"tls-{request.param}")
    ca_file, cert_file, key_file = make_ca_and_leaf(tmp)
    proc = new_server(tmp / "server", request.param)
    proc.base_url = proc.base_url.replace("http://", "https://", 1)
    proc.ca_file = ca_file
    proc.start("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    yield proc
    dispose(proc)


def test_code_flow_and_refresh_over_https_with_host_cookie_secure_and_hsts(https_server: ServerProcess) -> None:
    server = https_server
    assert server.metadata()["issuer"] == server.base_url  # the issuer defaults to https://HOST:PORT
    client = server.add_client(redirect_uri="https://app.example/cb")
    user = server.add_user()
    responses: list[httpx2.Response] = []
    with httpx2.Client(base_url=server.base_url, follow_redirects=False, verify=server.verify,
                       event_hooks={"response": [responses.append]}) as browser:
        auth = authorize(server, client, user, browser=browser)
    assert auth.code and auth.params["iss"] == server.base_url

    set_cookies = [value for r in responses for value in r.headers.get_list("set-cookie")]
    session = [c for c in set_cookies if c.startswith("__Host-tw_session=")]
    assert session, set_cookies
    attributes = {part.strip().split("=")[0].lower() for part in session[0].split(";")[1:]}
    assert {"secure", "httponly", "path"} <= attributes and "domain" not in attributes
    assert not [c for c in set_cookies if c.startswith("tw_session=")]
    assert responses and all(r.url.scheme == "https" for r in responses)
    assert all(r.headers.get("strict-transport-security") == "max-age=31536000" for r in responses)

    r = exchange_code(server, client, auth)
    assert r.status_code == 200, r.text
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    refreshed = server.token(client, {"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != r.json()["refresh_token"]


def test_a_client_that_does_not_trust_the_ca_is_refused(https_server: ServerProcess) -> None:
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(https_server.base_url + "/jwks.json")


def _handshake(server: ServerProcess, version: ssl.TLSVersion) -> str:
    """The protocol negotiated by a client that offers only ``version``, which trusts the test CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(server.ca_file))
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.0/1.1 at all
    context.minimum_version = context.maximum_version = version
    host, port = server.base_url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return str(tls.version())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused_and_tls_1_2_accepted(https_server: ServerProcess) -> None:
    assert _handshake(https_server, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(https_server, ssl.TLSVersion.TLSv1_1)
    # The server ending the handshake (asyncio closes without an alert), not this client failing to offer TLS 1.1.
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value), refused.value


@pytest.mark.parametrize("given", [["--tls-cert"], ["--tls-key"]])
def test_tls_cert_and_key_are_required_together(tmp_path: Path, given: list[str]) -> None:
    pem = tmp_path / "some.pem"
    pem.write_text("x")
    done = subprocess.run([TOKENWARD, "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", given[0], str(pem)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "--tls-cert and --tls-key go together" in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching the database
