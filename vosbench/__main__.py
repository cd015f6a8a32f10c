from vosbench.cli import main

raise SystemExit(main())
