"""`python -m pipelines` is the `govstream` command."""

from pipelines.cli import main

raise SystemExit(main())
