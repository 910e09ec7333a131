"""gunicorn.conf.py: the worker's post-init hook imports every view and freezes what is loaded (run in a child
process: a freeze would keep this test session's objects forever)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, runpy, sys
import django
django.setup()
conf = runpy.run_path("gunicorn.conf.py")
assert "livecodes.views" not in sys.modules
conf["post_worker_init"](None)
print(gc.get_freeze_count(), "livecodes.views" in sys.modules, "web.views" in sys.modules)
"""


def test_post_worker_init_imports_the_views_and_freezes():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scrm.settings", "DJANGO_SECRET_KEY": "x", "DJANGO_DEBUG": "0",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    frozen, livecodes_views, web_views = done.stdout.split()
    assert int(frozen) > 50_000  # Django and the project, out of the collector's reach
    assert livecodes_views == "True" and web_views == "True"
