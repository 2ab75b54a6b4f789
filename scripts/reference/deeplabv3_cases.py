"""DeepLabV3 parity fixtures for tests/models/deeplabv3.test.ts: deeplab_cases.py's DeepLabV3 cases
(see its docstring for the cases, files and tolerances), in a directory of their own.

    /usr/bin/python3 scripts/reference/deeplabv3_cases.py <outDir> [case names...]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deeplab_cases  # noqa: E402

if __name__ == "__main__":
    sys.exit(deeplab_cases.main("DeepLabV3", sys.argv))
