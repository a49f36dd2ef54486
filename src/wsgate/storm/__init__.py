"""`wsgate storm`: a load generator for WebSocket handshakes and messages."""
