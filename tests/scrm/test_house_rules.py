"""The house rules of DESIGN.md and STYLE.md, checked on every run."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ["scrm", "accounts", "contacts", "tagging", "livecodes", "journeys", "wecom", "web"]


def _python_files():
    for folder in PRODUCT_DIRS:
        yield from (p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_wecom_imports_wechatpy_or_an_http_client():
    offenders = []
    for path in _python_files():
        rel = path.relative_to(ROOT)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "wechatpy" and rel.parts[0] != "wecom":
                offenders.append(f"{rel}: {name}")
            if top in {"requests", "httpx", "urllib3"} and str(rel) != "wecom/backends/http.py":
                offenders.append(f"{rel}: {name}")
    assert offenders == []


def test_product_code_never_imports_the_simulator():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _python_files()
        if "simulator" not in path.parts and any(n.startswith("wecom.simulator") for n in _imports(path))
    ]
    assert offenders == []


def test_no_business_logic_in_signals():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _python_files()
        if re.search(r"@receiver\(|\b(pre|post)_(save|delete|init)\b|m2m_changed", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_templates_have_no_inline_script_and_no_safe_filter():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline <script>")
        if re.search(r"\|\s*safe\b", text) or "{% autoescape off" in text:
            offenders.append(f"{path.relative_to(ROOT)}: |safe / autoescape off")
        if re.search(r"\son[a-z]+=", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline event handler")
    assert offenders == []


def test_no_secrets_in_settings_defaults():
    text = (ROOT / "scrm/settings.py").read_text(encoding="utf-8")
    for name in ("WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY"):
        assert re.search(rf'{name} = env_secret\("{name}", ""\)', text), name
