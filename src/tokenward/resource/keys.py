"""Public keys from a JWKS, checked for use with one algorithm (RFC 7517, RFC 8725 §3.1).

A key is only ever used with the algorithm family its type allows, so an RSA public key can never be
abused as an HMAC secret (there is no HMAC at all here), and ``use: enc`` keys are never used to verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

# alg -> (kty, curve or None)
SUPPORTED_ALGS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
}
_HASHES: dict[str, hashes.HashAlgorithm] = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
MIN_RSA_BITS = 2048

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    kty: str
    curve: str | None
    alg: str | None  # the JWK's own "alg", if it names one
    key: PublicKey

    def allows(self, alg: str) -> bool:
        """True if this key may verify a token signed with ``alg``."""
        expected = SUPPORTED_ALGS.get(alg)
        if expected is None or (self.alg is not None and self.alg != alg):
            return False
        return (self.kty, self.curve) == expected

    def verify(self, alg: str, signature: bytes, data: bytes) -> bool:
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                size = 32 if alg == "ES256" else 48
                if len(signature) != 2 * size:
                    return False
                der = encode_dss_signature(int.from_bytes(signature[:size]), int.from_bytes(signature[size:]))
                self.key.verify(der, data, ec.ECDSA(_HASHES[alg[2:]]))
            elif isinstance(self.key, rsa.RSAPublicKey):
                pad: padding.AsymmetricPadding = padding.PKCS1v15()
                if alg.startswith("PS"):
                    pad = padding.PSS(mgf=padding.MGF1(_HASHES[alg[2:]]), salt_length=padding.PSS.DIGEST_LENGTH)
                self.key.verify(signature, data, pad, _HASHES[alg[2:]])
            else:
                self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def parse_jwks(document: Any) -> dict[str, VerificationKey]:
    """Usable signing keys by kid; keys without kid, private parts ignored, ``use: enc`` dropped."""
    keys: dict[str, VerificationKey] = {}
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")}
        try:
            key = _public_key(public)
        except Exception:  # noqa: S112 - a malformed key is skipped, never fatal for the others
            continue
        if key is None:
            continue
        alg = jwk.get("alg") if isinstance(jwk.get("alg"), str) else None
        keys[jwk["kid"]] = VerificationKey(jwk["kid"], public["kty"], public.get("crv"), alg, key)
    return keys


def _public_key(jwk: dict[str, Any]) -> PublicKey | None:
    kty = jwk.get("kty")
    if kty == "EC":
        ec_key = ECKey.import_key(jwk).public_key
        return ec_key if isinstance(ec_key, ec.EllipticCurvePublicKey) else None
    if kty == "RSA":
        rsa_key = RSAKey.import_key(jwk).public_key
        if isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size >= MIN_RSA_BITS:
            return rsa_key
        return None
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        okp = OKPKey.import_key(jwk).public_key
        return okp if isinstance(okp, ed25519.Ed25519PublicKey) else None
    return None
