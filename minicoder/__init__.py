"""minicoder: an educational, from-scratch reference implementation of the DeepSeek-Coder family.

One readable file per concept; see README.md for the map and the chapters.
"""

__version__ = "0.1.0"
