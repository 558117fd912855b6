"""`python -m pushsvc` is the `pushsvc` command."""

from pushsvc.cli import main

raise SystemExit(main())
