import sys

from lipservice_otel.app.cli import main

sys.exit(main())
