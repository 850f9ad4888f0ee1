"""Top-level entry point. Until the desktop app lands (combiner_app), this runs the `combiner` CLI:
`python main.py encode photo.png --bpp 1 -o photo.cmb`."""
import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
