"""The DNS names a PEM certificate is for: its subjectAltName's dNSName entries, else its
subject's common names. Pure: text in, names out; () for anything it cannot read.

The `ssl` module decodes a certificate only through a connection (getpeercert) or a private
helper, so the few DER fields needed are read here (RFC 5280 section 4.1):

    Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
        validity, subject, subjectPublicKeyInfo, [1] issuerUID OPTIONAL,
        [2] subjectUID OPTIONAL, [3] EXPLICIT extensions OPTIONAL }
    Name ::= SEQUENCE OF SET OF SEQUENCE { type OBJECT IDENTIFIER, value ANY }
    Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    SubjectAltName ::= SEQUENCE OF GeneralName; dNSName [2] IMPLICIT IA5String
"""

from __future__ import annotations

import base64
import binascii

PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"

SEQUENCE, SET, OID, OCTET_STRING = 0x30, 0x31, 0x06, 0x04
VERSION_TAG, EXTENSIONS_TAG, DNS_NAME_TAG = 0xA0, 0xA3, 0x82
COMMON_NAME = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
SUBJECT_ALT_NAME = bytes([0x55, 0x1D, 0x11])  # 2.5.29.17
# The subject's place among TBSCertificate's fields once the version is skipped:
# serialNumber, signature, issuer, validity, subject.
SUBJECT_INDEX = 4
# String types a common name comes in, and how each is encoded.
STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString, as everyone reads it
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}


def first_certificate_der(pem: str) -> bytes | None:
    """The DER bytes of the first certificate in PEM text (a chain's leaf)."""
    start = pem.find(PEM_BEGIN)
    end = pem.find(PEM_END, start + 1)
    if start < 0 or end < 0:
        return None
    try:
        return base64.b64decode("".join(pem[start + len(PEM_BEGIN) : end].split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """The DER element at `pos`: (tag, value, position after it). ValueError when it does
    not fit. Only the low tag numbers certificates use (no multi-byte tags)."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 4 or pos + size > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, data[pos : pos + length], pos + length


def children(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, value) of each element in a constructed value."""
    found = []
    pos = 0
    while pos < len(data):
        tag, value, pos = read_tlv(data, pos)
        found.append((tag, value))
    return found


def expect(tag: int, element: tuple[int, bytes]) -> bytes:
    if element[0] != tag:
        raise ValueError(f"expected tag {tag:#x}, got {element[0]:#x}")
    return element[1]


def common_names(subject: bytes) -> list[str]:
    names = []
    for rdn in children(subject):
        for attribute in children(expect(SET, rdn)):
            kind, value = children(expect(SEQUENCE, attribute))[:2]
            codec = STRING_CODECS.get(value[0])
            if expect(OID, kind) == COMMON_NAME and codec is not None:
                names.append(value[1].decode(codec, "replace"))
    return names


def alt_dns_names(extensions: bytes) -> list[str] | None:
    """The dNSName entries of the subjectAltName extension; None when there is none."""
    for extension in children(expect(SEQUENCE, children(extensions)[0])):
        fields = children(expect(SEQUENCE, extension))
        if expect(OID, fields[0]) != SUBJECT_ALT_NAME:
            continue
        value = expect(OCTET_STRING, fields[-1])
        general_names = children(expect(SEQUENCE, read_tlv(value, 0)[:2]))
        return [
            name.decode("ascii", "replace") for tag, name in general_names if tag == DNS_NAME_TAG
        ]
    return None


def certificate_dns_names(der: bytes) -> tuple[str, ...]:
    """The certificate's DNS names (subjectAltName, else the subject's common names), lower
    case; () when it cannot be read."""
    try:
        certificate = children(expect(SEQUENCE, read_tlv(der, 0)[:2]))
        fields = children(expect(SEQUENCE, certificate[0]))
        if fields and fields[0][0] == VERSION_TAG:
            fields = fields[1:]
        subject = expect(SEQUENCE, fields[SUBJECT_INDEX])
        names: list[str] | None = None
        for tag, value in fields[SUBJECT_INDEX + 1 :]:
            if tag == EXTENSIONS_TAG:
                names = alt_dns_names(value)
        if not names:
            names = common_names(subject)
    except (ValueError, IndexError):
        return ()
    return tuple(name.lower() for name in names)


def pem_dns_names(pem: str) -> tuple[str, ...]:
    """The DNS names of the first certificate in PEM text; () when there is none."""
    der = first_certificate_der(pem)
    return () if der is None else certificate_dns_names(der)
