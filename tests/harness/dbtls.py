"""A database reached over TCP with TLS, as worker hosts on other machines
reach it: a CA and a server certificate made for the test, README.md's
grants, secrets in files (never argv)."""
import datetime
import ipaddress
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.stack import ROOT


def make_ca(dirpath, name):
    """(key, cert) of a self-signed CA, its cert written to NAME.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(os.path.join(dirpath, name + ".pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def make_server_cert(dirpath, ca_key, ca_cert, ips=("127.0.0.1",)):
    """server.pem and server-key.pem for these addresses, signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ips[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(dirpath, "server.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(os.path.join(dirpath, "server-key.pem"), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))


def readme_grants():
    """The SQL block of README.md's "Database users and TLS"."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("### Database users and TLS"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def secret_file(dirpath, name, value):
    p = os.path.join(dirpath, name)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return p
