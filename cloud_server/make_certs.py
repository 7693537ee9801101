"""Test certificates for a TLS deployment: a CA, a server certificate, SuperNode key pairs.

    python -m cloud_server.make_certs --out certs --hosts 127.0.0.1 localhost cloud.example --nodes 2

Writes ``ca.crt``/``ca.key``, ``server.crt``/``server.key`` (valid for every --hosts name or
IP), and ``node_<i>`` / ``node_<i>.pub`` (ECDSA P-384 key pairs in OpenSSH format, what
Flower's SuperNode authentication uses). For tests and trials only: real deployments use
their own PKI.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from stylizer.atomic_io import atomic_write_bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _leaf(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, hosts: list[str], days: int
          ) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A server key and a certificate for ``hosts`` (IP addresses or DNS names) signed by the CA."""
    now = datetime.datetime.now(datetime.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def make_ca_and_server(out: Path, hosts: list[str], days: int = 365, edge_hosts: list[str] | None = None) -> None:
    """ca.crt, ca.key, server.crt, server.key in ``out``; with ``edge_hosts``, also edge_<i>.crt and
    edge_<i>.key for each edge's phone-facing service, for the i-th host, signed by the same CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = (x509.CertificateBuilder().subject_name(_name("fedvst test CA")).issuer_name(_name("fedvst test CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    atomic_write_bytes(out / "ca.key", _pem_key(ca_key), mode=0o600)
    atomic_write_bytes(out / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
    for name, names in [("server", hosts), *((f"edge_{i}", [h]) for i, h in enumerate(edge_hosts or []))]:
        key, cert = _leaf(ca_key, ca_cert, names, days)
        atomic_write_bytes(out / f"{name}.key", _pem_key(key), mode=0o600)
        atomic_write_bytes(out / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))


def make_node_keys(out: Path, name: str) -> tuple[Path, Path]:
    """An ECDSA P-384 key pair for SuperNode authentication: (private PEM, OpenSSH public)."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = out / name
    public = out / f"{name}.pub"
    atomic_write_bytes(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                  serialization.NoEncryption()), mode=0o600)
    atomic_write_bytes(public, key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                             serialization.PublicFormat.OpenSSH))
    return private, public


def main() -> None:
    parser = argparse.ArgumentParser(description="test CA, server certificate and SuperNode keys")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hosts", nargs="+", default=["127.0.0.1", "localhost"])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--edge-hosts", nargs="*", default=[],
                        help="each edge's host name or address: edge_<i>.crt/.key for its service to phones")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_ca_and_server(args.out, args.hosts, edge_hosts=args.edge_hosts)
    for i in range(args.nodes):
        make_node_keys(args.out, f"node_{i}")
    edges = f", {len(args.edge_hosts)} edge certificates (edge_<i>.crt)" if args.edge_hosts else ""
    print(f"wrote CA, server certificate for {', '.join(args.hosts)}{edges} and {args.nodes} SuperNode key pairs "
          f"to {args.out}")


if __name__ == "__main__":
    main()
