"""`python3 -m k3s_backup.service serve ...`: the service without the CLI around it."""

import sys

from k3s_backup.service.main import main

sys.exit(main())
