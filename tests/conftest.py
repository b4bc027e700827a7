"""Test-wide environment.

The web app answers only to the host names of ``MOVIEREC_ALLOWED_HOSTS`` (DNS-rebinding
protection; default: the loopback names). Starlette's ``TestClient`` sends
``Host: testserver``, so the test environment allows that name too, as Django's test
runner does; tests of the Host check set their own list.
"""

from __future__ import annotations

import os

os.environ.setdefault("MOVIEREC_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
