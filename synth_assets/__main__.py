import sys

from synth_assets.cli import main

sys.exit(main())
