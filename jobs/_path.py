"""Put the repository root first on ``sys.path``.

``ray job submit --working-dir .`` ships this checkout to the cluster; with the root on the path the
job runs the shipped ``rayir`` even where the cluster image has no (or another) rayir installed.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
