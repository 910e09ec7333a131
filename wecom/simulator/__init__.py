"""A WeCom (企业微信) stand-in server for demos and end-to-end tests.

It speaks WeCom's wire protocol under ``/cgi-bin/``, keeps its own world (members, customers, tags,
contact/join ways, groups, mass messages), and fires real encrypted callbacks at a webhook when a
simulated customer or member acts (``/sim/actions/...``). Standard library + ``cryptography`` only; it
must never import Django, wechatpy or other product code.

    python -m wecom.simulator --port 0 --seed-demo

In-process::

    with SimulatorServer(SimulatorConfig(port=0)) as server:
        requests.get(server.url + "/cgi-bin/gettoken", params={...})
"""

from __future__ import annotations

from .config import SimulatorConfig
from .crypto import WeComCrypto
from .server import SimulatorServer, main

__all__ = ["SimulatorConfig", "SimulatorServer", "WeComCrypto", "main"]
