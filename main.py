"""Top-level entry point: `python main.py [FILE]` starts COMBINER Studio (the desktop app).

The command-line tool is `combiner` (or `python -m engine.cli`)."""
import sys

from combiner_app.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
