"""Pure protocol logic: HTTP/1.1 heads, the RFC 6455 handshake and frame headers.

Nothing here touches a socket, a clock or asyncio: functions take bytes and return bytes
or raise `ProtocolError` carrying the cause code from `wsgate.findings`.
"""
