module spanprof/bench/loadgen

go 1.19
