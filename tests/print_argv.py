"""Prints its arguments as one JSON list: what a command tool's process really received."""

import json
import sys

print(json.dumps(sys.argv[1:]))
