"""``python tests/chaos/killed_after_create.py run ...``: the operator (``carbonshift run ...``),
killed with SIGKILL by itself the moment a member cluster has answered the create of the member
Job of CarbonAwareJob ``$CARBONSHIFT_TEST_KILL_AFTER_CREATE`` (``namespace/name``), before any
status write can follow. That is the window a real kill -9 hits only by chance.

Test-only: the operator package holds no such hook. This entry point wraps the one function that
sends a member Job create (``controller.dispatch.create``) and then runs the real CLI.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from carbonshift.cli import main
from carbonshift.controller import dispatch
from carbonshift.controller.manifests import ANNOTATION_SOURCE

TARGET = os.environ["CARBONSHIFT_TEST_KILL_AFTER_CREATE"]
_create = dispatch.create


async def create_then_die(api: Any, cluster: str, manifest: dict[str, Any], uid: str, hub_id: str) -> dict[str, Any]:
    created = await _create(api, cluster, manifest, uid, hub_id)
    if (manifest["metadata"].get("annotations") or {}).get(ANNOTATION_SOURCE) == TARGET:
        sys.stderr.write(f"killed after the create of {TARGET} in {cluster} was answered\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return created


dispatch.create = create_then_die  # type: ignore[assignment]
raise SystemExit(main())
