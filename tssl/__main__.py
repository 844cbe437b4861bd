import sys

from tssl.cli import main

sys.exit(main())
