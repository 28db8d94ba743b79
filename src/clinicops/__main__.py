import sys

from clinicops.cli import main

sys.exit(main())
