from __future__ import annotations

from pathlib import Path

from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.procs import free_port, nginx


def test_echo_backend_through_real_nginx(tmp_path: Path) -> None:
    with ws_server() as backend:
        port = free_port()
        body = f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}
    }}"""
        with nginx(body, tmp_path, port), connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
