// pyroscope-go, Grafana's own Go profiling client, pushing to the server given as the first
// argument: CPU profiles of pyroscopeGoWork for the number of seconds given as the second, with
// tags, then a flush (Stop). Built by scripts/setup into build/tools/spanprof-pyroscope-go;
// tests/server/test_peer_clients.py runs it.
package main

import (
	"log"
	"os"
	"strconv"
	"time"

	"github.com/grafana/pyroscope-go"
)

//go:noinline
func pyroscopeGoWork(until time.Time) int {
	x := 0
	for time.Now().Before(until) {
		for i := 0; i < 100000; i++ {
			x += i ^ x
		}
	}
	return x
}

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: spanprof-pyroscope-go SERVER_URL SECONDS")
	}
	secs, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil {
		log.Fatal(err)
	}
	p, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: "pyroscope-go-peer",
		ServerAddress:   os.Args[1],
		Tags:            map[string]string{"env": "ci"},
		ProfileTypes:    []pyroscope.ProfileType{pyroscope.ProfileCPU},
		UploadRate:      time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	pyroscopeGoWork(time.Now().Add(time.Duration(secs * float64(time.Second))))
	if err := p.Stop(); err != nil {
		log.Fatal(err)
	}
}
