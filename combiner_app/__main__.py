"""`python -m combiner_app [FILE]` starts COMBINER Studio."""
import sys

from .main import main

sys.exit(main())
