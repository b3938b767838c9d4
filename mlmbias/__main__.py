import sys

from mlmbias.cli import main

sys.exit(main())
