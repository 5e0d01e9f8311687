"""`spanprof demo`: an instrumented sample service (service.py) and the load that drives it
(load.py). The subcommand itself is spanprof._cli_demo."""
