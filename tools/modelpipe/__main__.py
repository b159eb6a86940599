"""Allow ``python -m modelpipe``."""

from modelpipe.cli import main

raise SystemExit(main())
