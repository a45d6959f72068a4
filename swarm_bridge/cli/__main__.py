"""`python -m swarm_bridge.cli` = `swarm-bridge`."""

import sys

from swarm_bridge.cli import main

sys.exit(main())
