"""Static checks of wsgate-client.js as the package ships it: a small ES module with no
imports (no build step, nothing to fetch), its API in the JSDoc header, its constants
those of the Python modules it mirrors, and the demo page loading it from the gateway.
Its behaviour is tested in Chromium (tests/e2e/test_browser_client.py)."""

from __future__ import annotations

import re
from importlib import resources

from wsgate.protocol.close_reason import MAX_RETRY_AFTER_S

GATEWAY = resources.files("wsgate.gateway")
SCRIPT = GATEWAY.joinpath("wsgate-client.js").read_text(encoding="utf-8")
DEMO_PAGE = GATEWAY.joinpath("demo_chat.html").read_text(encoding="utf-8")
API = [
    "WsgateClient",
    "WsgateQueueFullError",
    "parseCloseReason",
    "backoffWindowMs",
    "decideAfterClose",
    "DEFAULT_POLICY",
]
# Small enough to read in one sitting, its documentation included.
MAX_SCRIPT_BYTES = 24_000


def header() -> str:
    assert SCRIPT.startswith("/**\n")
    return SCRIPT[: SCRIPT.index("*/")]


def test_an_es_module_that_imports_nothing() -> None:
    assert re.search(r"^\s*import\b", SCRIPT, re.MULTILINE) is None
    assert "import(" not in SCRIPT
    assert "require(" not in SCRIPT
    assert re.search(r"^export ", SCRIPT, re.MULTILINE)
    assert len(SCRIPT.encode()) <= MAX_SCRIPT_BYTES


def test_every_export_is_in_the_api_and_documented() -> None:
    exported = re.findall(r"^export (?:class|function|const) (\w+)", SCRIPT, re.MULTILINE)
    assert set(API) <= set(exported)
    documented = header()
    for name in ["WsgateClient", "parseCloseReason", "backoffWindowMs", "decideAfterClose"]:
        assert name in documented
    for event in ["open", "message", "close", "retry", "giveup"]:
        assert f'"{event}"' in documented
    options = re.findall(r"options\.(\w+) \?\?", SCRIPT)
    assert "queueLimit" in options
    policy = re.search(r"DEFAULT_POLICY = Object\.freeze\(\{(.*?)\n\}\);", SCRIPT, re.DOTALL)
    assert policy is not None
    options += re.findall(r"^\s+(\w+):", policy.group(1), re.MULTILINE)
    assert "hintSpreadMinMs" in options
    for option in options:
        assert f"options.{option}" in documented, option


def test_its_retry_after_cap_is_close_reason_pys() -> None:
    found = re.search(r"^export const MAX_RETRY_AFTER_S = (\d+);", SCRIPT, re.MULTILINE)
    assert found is not None
    assert int(found.group(1)) == MAX_RETRY_AFTER_S


def test_the_demo_page_loads_it_from_the_gateway_path() -> None:
    assert '<script type="module">' in DEMO_PAGE
    assert 'import { WsgateClient } from "/wsgate-client.js";' in DEMO_PAGE
    assert "new WebSocket(" not in DEMO_PAGE
