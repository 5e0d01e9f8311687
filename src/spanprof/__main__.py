from spanprof.cli import main

raise SystemExit(main())
