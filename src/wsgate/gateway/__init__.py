"""`wsgate serve`: the WebSocket-aware reverse proxy (I/O around pure policy modules)."""
