"""Draw the project logo: python scripts/make_logo.py logo.svg"""

import sys

import palette
from geometry.io.svg import dot, save

if __name__ == "__main__":
    print("colours:", palette.PRIMARY, palette.ACCENT)
    save(sys.argv[1], [dot(10, 10), dot(20, 20)])
