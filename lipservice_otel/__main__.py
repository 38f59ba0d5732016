import sys

from lipservice_otel.cli import main

sys.exit(main())
