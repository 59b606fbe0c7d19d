"""A TLS scanner (SSLyze) against Kavka's SSL listener: which protocol versions and cipher suites
the listener accepts, with the certificates `kavka certs` makes.

What is checked (docs/security.md, "TLS scan", records the result):
- SSL 2.0, SSL 3.0, TLS 1.0 and TLS 1.1 are refused: SSLyze's scan of each completes, the version
  is reported unsupported and every cipher suite it tried was rejected by the server.
- TLS 1.2 and TLS 1.3 are accepted (at least one suite each).
- No accepted suite is weak. TLS 1.2: every accepted suite is an ECDHE or DHE key exchange
  (forward secrecy; no static RSA/DH, no PSK, no anonymous DH_anon/ECDH_anon) with an AEAD cipher
  (AES-GCM, ChaCha20-Poly1305 or AES-CCM with its full 16-byte tag), so none is NULL, EXPORT,
  RC4, DES or 3DES, IDEA, SEED, MD5 or any CBC mode (CBC-SHA1 included); keys are >= 128 bits
  and SSLyze does not flag it anonymous. TLS 1.3: only TLS_AES_128_GCM_SHA256,
  TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256 (not the 8-byte-tag CCM_8). Ephemeral
  keys: ECDH on X25519, X448, P-256, P-384 or P-521 only, finite-field DH of >= 2048 bits.
- The key exchange groups offered are among those curves; TLS compression is off; the listener is
  not vulnerable to Heartbleed, CCS injection or ROBOT; it supports TLS_FALLBACK_SCSV and the
  extended master secret; with ssl.client.auth=none (where SSLyze can try), client-initiated
  renegotiation is refused.
- With ssl.enabled.protocols=TLSv1.3, TLS 1.2 is refused too; with ssl.cipher.suites, only the
  suites named are accepted.

The listener runs with the node certificate (ECDSA P-256) and truststore from `kavka certs` and,
as in a real deployment, ssl.client.auth=required: SSLyze then connects without a client
certificate, which is enough (a suite the server agrees to before asking for the certificate
counts as accepted; SSLyze's legacy OpenSSL cannot load the ECDSA client chain anyway).

Skips when SSLyze is not installed (it is in compat/python/requirements.txt).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kavka_harness import free_port, kavka_certs, node_store_settings

sslyze = pytest.importorskip(
    "sslyze", reason="SSLyze is not installed (pip install -r compat/python/requirements.txt): "
    "the TLS listener scan cannot run")

from sslyze import (  # noqa: E402
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

REFUSED_VERSIONS = {
    "SSL 2.0": ScanCommand.SSL_2_0_CIPHER_SUITES,
    "SSL 3.0": ScanCommand.SSL_3_0_CIPHER_SUITES,
    "TLS 1.0": ScanCommand.TLS_1_0_CIPHER_SUITES,
    "TLS 1.1": ScanCommand.TLS_1_1_CIPHER_SUITES,
}
MODERN_VERSIONS = {
    "TLS 1.2": ScanCommand.TLS_1_2_CIPHER_SUITES,
    "TLS 1.3": ScanCommand.TLS_1_3_CIPHER_SUITES,
}
VULNERABILITY_SCANS = {
    ScanCommand.ELLIPTIC_CURVES,
    ScanCommand.TLS_COMPRESSION,
    ScanCommand.HEARTBLEED,
    ScanCommand.OPENSSL_CCS_INJECTION,
    ScanCommand.ROBOT,
    ScanCommand.TLS_FALLBACK_SCSV,
    ScanCommand.TLS_EXTENDED_MASTER_SECRET,
}

STRONG_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                       "TLS_CHACHA20_POLY1305_SHA256"}
STRONG_CURVES = {"X25519", "X448", "secp256r1", "prime256v1", "secp384r1", "secp521r1"}
WEAK_MARKERS = ("NULL", "EXPORT", "RC4", "DES", "IDEA", "SEED", "MD5", "_anon_", "CBC", "CCM_8")


# ---------------------------------------------------------------- setup


@pytest.fixture
def certs(kavka_bin, tmp_path) -> Path:
    d = tmp_path / "certs"
    kavka_certs(kavka_bin, d, "ca")
    kavka_certs(kavka_bin, d, "node", "--name", "n1", "--ip", "127.0.0.1", "--dns", "localhost")
    return d


def ssl_broker(broker_factory, certs: Path, **settings: str):
    """One node whose only listener is SSL, with the node's PKCS12 keystore and the truststore;
    ssl.client.auth=required unless settings say otherwise."""
    port = free_port()
    conf = {
        "listeners": f"SSL://127.0.0.1:{port}",
        "ssl.client.auth": "required",
        **node_store_settings(certs, "n1"),
    }
    conf.update(settings)
    return broker_factory(port=port, **conf)


def scan(port: int, commands: set) -> object:
    """One SSLyze scan of 127.0.0.1:port; fails unless the server was reached."""
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname="localhost", port=port, ip_address="127.0.0.1"),
        network_configuration=ServerNetworkConfiguration(tls_server_name_indication="localhost",
                                                         network_timeout=5),
        scan_commands=commands)
    scanner = Scanner(per_server_concurrent_connections_limit=5)
    scanner.queue_scans([request])
    results = list(scanner.get_results())
    assert len(results) == 1
    r = results[0]
    assert r.scan_status == ServerScanStatusEnum.COMPLETED, \
        f"SSLyze could not connect: {r.connectivity_error_trace}"
    return r


def attempt(result, command):
    """The completed result of one scan command (fails on a scanner error)."""
    a = getattr(result.scan_result, command.value)
    assert a.status == ScanCommandAttemptStatusEnum.COMPLETED, \
        f"{command.value}: {a.status} {a.error_reason}\n{a.error_trace}"
    return a.result


def suites(cipher_result) -> list[str]:
    return [s.cipher_suite.name for s in cipher_result.accepted_cipher_suites]


def describe(result) -> str:
    """A readable summary (printed; docs/security.md quotes it)."""
    lines = [f"client auth: {result.connectivity_result.client_auth_requirement.name}"]
    for name, cmd in {**REFUSED_VERSIONS, **MODERN_VERSIONS}.items():
        a = getattr(result.scan_result, cmd.value)
        if a.status != ScanCommandAttemptStatusEnum.COMPLETED:
            continue
        accepted = a.result.accepted_cipher_suites
        if not accepted:
            lines.append(f"{name}: refused ({len(a.result.rejected_cipher_suites)} suites tried)")
            continue
        lines.append(f"{name}: accepted {len(accepted)} of "
                     f"{len(accepted) + len(a.result.rejected_cipher_suites)} suites tried")
        for s in accepted:
            key = s.ephemeral_key
            kx = f"{getattr(key, 'curve_name', None) or key.type_name} {key.size} bits" if key else "-"
            lines.append(f"    {s.cipher_suite.name:<50} {s.cipher_suite.key_size:>3}-bit  {kx}")
    curves = getattr(result.scan_result, ScanCommand.ELLIPTIC_CURVES.value)
    if curves.status == ScanCommandAttemptStatusEnum.COMPLETED:
        lines.append("key exchange groups: "
                     + ", ".join(c.name for c in curves.result.supported_curves or []))
    return "\n".join(lines)


# ---------------------------------------------------------------- checks


def assert_refused(result, versions: dict) -> None:
    for name, cmd in versions.items():
        r = attempt(result, cmd)
        assert not r.is_tls_version_supported and not r.accepted_cipher_suites, \
            f"{name} is accepted: {suites(r)}"
        assert r.rejected_cipher_suites, f"{name}: no suite was tried"
        assert all(s.error_message for s in r.rejected_cipher_suites)


def weak_reasons(version: str, accepted) -> list[str]:
    name, cs, key = accepted.cipher_suite.name, accepted.cipher_suite, accepted.ephemeral_key
    out = [f"contains {m}" for m in WEAK_MARKERS if m in name]
    if cs.is_anonymous:
        out.append("anonymous")
    if cs.key_size < 128:
        out.append(f"{cs.key_size}-bit key")
    if version == "TLS 1.2":
        if not name.startswith(("TLS_ECDHE_", "TLS_DHE_")):
            out.append("no forward secrecy (not ECDHE/DHE)")
        if not ("_GCM_" in name or "CHACHA20_POLY1305" in name or name.endswith("_CCM")):
            out.append("not an AEAD cipher")
    elif name not in STRONG_TLS13_SUITES:
        out.append("not one of the three TLS 1.3 AEAD suites")
    if key is not None:
        curve = getattr(key, "curve_name", None)
        if curve is not None and curve not in STRONG_CURVES:
            out.append(f"ECDH on {curve}")
        if curve is None and key.size < 2048:
            out.append(f"{key.type_name} of {key.size} bits")
    return out


def assert_strong(result, versions: dict) -> None:
    for name, cmd in versions.items():
        r = attempt(result, cmd)
        assert r.is_tls_version_supported and r.accepted_cipher_suites, f"{name} is refused"
        weak = {s.cipher_suite.name: why for s in r.accepted_cipher_suites
                if (why := weak_reasons(name, s))}
        assert not weak, f"weak {name} cipher suites accepted: {weak}"


def assert_no_known_weakness(result) -> None:
    curves = attempt(result, ScanCommand.ELLIPTIC_CURVES)
    offered = {c.name for c in curves.supported_curves or []}
    assert offered and offered <= STRONG_CURVES, offered
    assert not attempt(result, ScanCommand.TLS_COMPRESSION).supports_compression
    assert not attempt(result, ScanCommand.HEARTBLEED).is_vulnerable_to_heartbleed
    assert not attempt(result, ScanCommand.OPENSSL_CCS_INJECTION).is_vulnerable_to_ccs_injection
    robot = attempt(result, ScanCommand.ROBOT).robot_result.name
    assert robot in ("NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED"), robot
    assert attempt(result, ScanCommand.TLS_FALLBACK_SCSV).supports_fallback_scsv
    assert attempt(result, ScanCommand.TLS_EXTENDED_MASTER_SECRET).supports_ems_extension


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("client_auth", ["required", "none"])
def test_default_protocols_and_suites(certs, broker_factory, client_auth):
    """Kavka's defaults (ssl.enabled.protocols=TLSv1.2,TLSv1.3, every suite rustls offers):
    nothing below TLS 1.2, no weak suite, no known weakness."""
    b = ssl_broker(broker_factory, certs, **{"ssl.client.auth": client_auth})
    commands = {*REFUSED_VERSIONS.values(), *MODERN_VERSIONS.values(), *VULNERABILITY_SCANS}
    if client_auth == "none":
        commands.add(ScanCommand.SESSION_RENEGOTIATION)
    r = scan(b.port, commands)
    print(f"\n--- SSLyze {sslyze.__version__.__version__}, ssl.client.auth={client_auth}\n{describe(r)}")
    # SSLyze's names for ssl.client.auth=required / none.
    expected_auth = {"required": "REQUIRED", "none": "DISABLED"}[client_auth]
    assert r.connectivity_result.client_auth_requirement.name == expected_auth, r.connectivity_result
    assert_refused(r, REFUSED_VERSIONS)
    assert_strong(r, MODERN_VERSIONS)
    assert_no_known_weakness(r)
    if client_auth == "none":
        reneg = attempt(r, ScanCommand.SESSION_RENEGOTIATION)
        assert not reneg.is_vulnerable_to_client_renegotiation_dos, reneg
    # The refusals are the server's: the broker logged handshakes it found incompatible.
    assert "reason=peer is incompatible" in b.log_text(), b.log_tail(4000)
    assert b.alive(), b.log_tail()


def test_tls13_only_refuses_tls12(certs, broker_factory):
    """ssl.enabled.protocols=TLSv1.3: TLS 1.2 is refused like everything older."""
    b = ssl_broker(broker_factory, certs, **{"ssl.enabled.protocols": "TLSv1.3"})
    r = scan(b.port, {*REFUSED_VERSIONS.values(), *MODERN_VERSIONS.values()})
    print(f"\n--- SSLyze, ssl.enabled.protocols=TLSv1.3\n{describe(r)}")
    assert_refused(r, {**REFUSED_VERSIONS, "TLS 1.2": ScanCommand.TLS_1_2_CIPHER_SUITES})
    assert_strong(r, {"TLS 1.3": ScanCommand.TLS_1_3_CIPHER_SUITES})


def test_cipher_suites_setting_limits_the_suites(certs, broker_factory):
    """ssl.cipher.suites (Java/IANA names): exactly the suites named are accepted."""
    chosen = {"TLS 1.2": ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
              "TLS 1.3": ["TLS_AES_256_GCM_SHA384"]}
    b = ssl_broker(broker_factory, certs,
                   **{"ssl.cipher.suites": ",".join(chosen["TLS 1.3"] + chosen["TLS 1.2"])})
    r = scan(b.port, {*MODERN_VERSIONS.values()})
    print(f"\n--- SSLyze, ssl.cipher.suites={','.join(chosen['TLS 1.3'] + chosen['TLS 1.2'])}\n"
          f"{describe(r)}")
    for name, cmd in MODERN_VERSIONS.items():
        assert suites(attempt(r, cmd)) == chosen[name], describe(r)
