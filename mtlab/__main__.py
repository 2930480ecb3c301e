import sys

try:
    from .cli import main

    sys.exit(main())
except KeyboardInterrupt:  # e.g. while torch is still importing: one line, not a traceback
    print("interrupted (Ctrl-C)", file=sys.stderr)
    sys.exit(130)
