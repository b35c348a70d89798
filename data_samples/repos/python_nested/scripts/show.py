"""Command line: PYTHONPATH=src:lib python scripts/show.py "90 min" h"""

import sys

import unitfmt.render

if __name__ == "__main__":
    print(unitfmt.render.render(sys.argv[1], sys.argv[2]))
